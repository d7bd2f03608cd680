/**
 * Generated corpora for the CPU quickstart: English-like prose, Python-like code, and
 * arithmetic with exact answers, plus a held-out arithmetic multiple-choice task. Stage 1
 * trains on prose + code; when stage 2 adds math, the task's accuracy climbs from chance —
 * the staged-mixture idea, visible in minutes. Everything derives from the seed, so the
 * corpora are reproducible byte for byte and nothing large lives in git.
 */
import { createHash } from 'node:crypto';
import type { ChoiceItem } from './eval-task.js';

/** mulberry32: tiny, fast, good enough for synthetic text; deterministic across platforms. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Random = () => number;
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
const between = (random: Random, low: number, high: number) => low + Math.floor(random() * (high - low + 1));

const NOUNS = [
  'river',
  'teacher',
  'village',
  'garden',
  'scientist',
  'child',
  'market',
  'library',
  'mountain',
  'farmer',
  'city',
  'bird',
  'storm',
  'bridge',
  'doctor',
  'forest',
  'ship',
  'letter',
  'window',
  'artist',
  'engine',
  'student',
  'island',
  'kitchen',
  'road',
  'friend',
  'castle',
  'valley',
  'machine',
  'painter',
];
const ADJECTIVES = [
  'old',
  'quiet',
  'bright',
  'small',
  'careful',
  'green',
  'ancient',
  'busy',
  'gentle',
  'cold',
  'narrow',
  'happy',
  'distant',
  'heavy',
  'clever',
  'tall',
  'warm',
  'strange',
];
const VERBS = [
  ['walks', 'toward'],
  ['looks', 'at'],
  ['waits', 'near'],
  ['talks', 'with'],
  ['runs', 'past'],
  ['writes', 'about'],
  ['thinks', 'about'],
  ['sings', 'to'],
  ['works', 'beside'],
  ['travels', 'across'],
] as const;
const CONNECTIVES = [
  'Later,',
  'Meanwhile,',
  'In the morning,',
  'After a while,',
  'Every evening,',
  'Suddenly,',
  'Because of this,',
  'At last,',
];

function nounPhrase(random: Random): string {
  const article = random() < 0.5 ? 'the' : 'a';
  return random() < 0.6
    ? `${article} ${pick(random, ADJECTIVES)} ${pick(random, NOUNS)}`
    : `${article} ${pick(random, NOUNS)}`;
}

function sentence(random: Random): string {
  const [verb, preposition] = pick(random, VERBS);
  const subject = nounPhrase(random);
  let body = `${subject} ${verb} ${preposition} ${nounPhrase(random)}`;
  if (random() < 0.3) body += ` and ${nounPhrase(random)}`;
  if (random() < 0.25) body = `${pick(random, CONNECTIVES)} ${body}`;
  return `${body.charAt(0).toUpperCase()}${body.slice(1)}.`;
}

export function proseDocument(random: Random): string {
  const paragraphs: string[] = [];
  for (let p = between(random, 1, 3); p > 0; p--) {
    paragraphs.push(Array.from({ length: between(random, 3, 7) }, () => sentence(random)).join(' '));
  }
  return paragraphs.join('\n\n');
}

const NAMES = [
  'total',
  'count',
  'value',
  'items',
  'result',
  'index',
  'scale',
  'limit',
  'offset',
  'score',
  'width',
  'height',
];
const FUNCTIONS = ['compute', 'update', 'merge', 'filter', 'count', 'scale', 'clamp', 'sum', 'find', 'build'];

export function codeDocument(random: Random): string {
  const lines: string[] = [];
  for (let f = between(random, 1, 3); f > 0; f--) {
    const name = `${pick(random, FUNCTIONS)}_${pick(random, NAMES)}`;
    const [a, b] = [
      pick(random, NAMES),
      pick(
        random,
        NAMES.filter((n) => n !== 'result'),
      ),
    ];
    lines.push(`def ${name}(${a}, ${b === a ? `${b}_2` : b}):`);
    lines.push('    result = 0');
    switch (between(random, 0, 2)) {
      case 0:
        lines.push(`    for i in range(${a}):`, `        result += i * ${between(random, 2, 9)}`);
        break;
      case 1:
        lines.push(
          `    if ${a} > ${between(random, 0, 50)}:`,
          `        result = ${a} - ${between(random, 1, 9)}`,
          '    else:',
          `        result = ${a} + ${between(random, 1, 9)}`,
        );
        break;
      default:
        lines.push(`    while result < ${a}:`, `        result += ${between(random, 1, 5)}`);
    }
    lines.push('    return result', '');
  }
  lines.push(
    `print(${pick(random, FUNCTIONS)}_${pick(random, NAMES)}(${between(random, 1, 20)}, ${between(random, 1, 20)}))`,
  );
  return lines.join('\n');
}

export interface Problem {
  a: number;
  b: number;
  op: '+' | '-' | '*';
  answer: number;
}

export function problemPrompt(problem: Problem): string {
  return `Question: ${problem.a} ${problem.op} ${problem.b} =\nAnswer:`;
}

/** One in ten problems (by hash) is held out for the eval task and never appears in training. */
export function isHeldOutProblem(problem: Pick<Problem, 'a' | 'b' | 'op'>): boolean {
  return (createHash('sha256').update(`${problem.a}${problem.op}${problem.b}`).digest()[0] as number) < 26;
}

function randomProblem(random: Random): Problem {
  const op = pick(random, ['+', '+', '-', '*'] as const);
  if (op === '*') {
    const [a, b] = [between(random, 2, 12), between(random, 2, 12)];
    return { a, b, op, answer: a * b };
  }
  const [a, b] = [between(random, 10, 99), between(random, 10, 99)];
  if (op === '-') return a >= b ? { a, b, op, answer: a - b } : { a: b, b: a, op, answer: b - a };
  return { a, b, op, answer: a + b };
}

function trainingProblem(random: Random): Problem {
  for (;;) {
    const problem = randomProblem(random);
    if (!isHeldOutProblem(problem)) return problem;
  }
}

export function mathDocument(random: Random): string {
  return Array.from({ length: between(random, 4, 10) }, () => {
    const problem = trainingProblem(random);
    return `${problemPrompt(problem)} ${problem.answer}`;
  }).join('\n\n');
}

/**
 * Wrong answers graded like a real benchmark's: what the other operations give on the same
 * operands (a model that has not learned what `+`, `-`, `*` do picks these) and a near miss in
 * the tens digit (only exact arithmetic rules it out). So accuracy climbs in steps as a model
 * learns the operations, instead of staying at chance until it adds perfectly.
 */
export function distractors(problem: Problem): number[] {
  const { a, b, answer } = problem;
  const candidates = [
    a + b,
    Math.abs(a - b),
    a * b,
    answer >= 10 ? answer - 10 : answer + 10,
    answer + 1,
    answer + 2,
  ];
  const chosen: number[] = [];
  for (const candidate of candidates) {
    if (candidate !== answer && !chosen.includes(candidate) && chosen.length < 3) chosen.push(candidate);
  }
  return chosen;
}

export function arithmeticTask(count: number, seed: number): ChoiceItem[] {
  const random = seededRandom(seed ^ 0x5eed);
  const items: ChoiceItem[] = [];
  const seen = new Set<string>();
  while (items.length < count) {
    const problem = randomProblem(random);
    const key = `${problem.a}${problem.op}${problem.b}`;
    if (!isHeldOutProblem(problem) || seen.has(key)) continue;
    seen.add(key);
    const options = [problem.answer, ...distractors(problem)];
    // Shuffle so the gold position is uniform.
    for (let i = options.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [options[i], options[j]] = [options[j] as number, options[i] as number];
    }
    items.push({
      context: problemPrompt(problem),
      choices: options.map((o) => ` ${o}`),
      gold: options.indexOf(problem.answer),
      id: key,
    });
  }
  return items;
}

export interface QuickstartCorpora {
  /** File name → JSON Lines content ({"text": ...} per line). */
  corpora: Record<'prose.jsonl' | 'code.jsonl' | 'math.jsonl', string>;
  /** The held-out arithmetic task in the multiple-choice format. */
  task: ChoiceItem[];
}

/** `documents` per corpus; about 0.5 kB per document. */
export function generateQuickstart(documents: number, seed: number, taskItems = 200): QuickstartCorpora {
  const corpus = (offset: number, make: (random: Random) => string) => {
    const random = seededRandom(seed + offset);
    return Array.from({ length: documents }, () => `${JSON.stringify({ text: make(random) })}\n`).join('');
  };
  return {
    corpora: {
      'prose.jsonl': corpus(1, proseDocument),
      'code.jsonl': corpus(2, codeDocument),
      'math.jsonl': corpus(3, mathDocument),
    },
    task: arithmeticTask(taskItems, seed),
  };
}

/** How the quickstart's chat data asks for a problem; the answer is always `a op b = answer`. */
const QUESTION_FORMS = [
  (p: Problem) => `What is ${p.a} ${p.op} ${p.b}?`,
  (p: Problem) => `Compute ${p.a} ${p.op} ${p.b}.`,
  (p: Problem) => `How much is ${p.a} ${p.op} ${p.b}?`,
] as const;

export function problemAnswer(problem: Problem, answer = problem.answer): string {
  return `${problem.a} ${problem.op} ${problem.b} = ${answer}`;
}

export interface QuickstartChat {
  /** SmolTalk's layout: {"messages": [{role, content}, ...]} per line. */
  'chat.jsonl': string;
  /**
   * UltraFeedback binarized's layout: {"prompt": text, "chosen": [user, assistant],
   * "rejected": [user, assistant]} per line; chosen answers right, rejected with a distractor.
   */
  'preference.jsonl': string;
}

/**
 * Chat and preference data for the quickstart's SFT and DPO stages: arithmetic questions in
 * ChatML conversations (one or two question turns, sometimes a system prompt), answered
 * `a op b = answer`; preference pairs put the right answer against a plausible wrong one
 * (another operation's result or a near miss). Problems held out of the math corpus stay out.
 */
export function generateChatQuickstart(conversations: number, pairs: number, seed: number): QuickstartChat {
  const random = seededRandom(seed ^ 0xc4a7);
  const chat: string[] = [];
  for (let i = 0; i < conversations; i++) {
    const messages: { role: string; content: string }[] = [];
    if (random() < 0.1) messages.push({ role: 'system', content: 'You are a careful calculator.' });
    for (let turn = random() < 0.3 ? 2 : 1; turn > 0; turn--) {
      const problem = trainingProblem(random);
      messages.push({ role: 'user', content: pick(random, QUESTION_FORMS)(problem) });
      messages.push({ role: 'assistant', content: problemAnswer(problem) });
    }
    chat.push(`${JSON.stringify({ messages })}\n`);
  }
  const preference: string[] = [];
  for (let i = 0; i < pairs; i++) {
    const problem = trainingProblem(random);
    const question = pick(random, QUESTION_FORMS)(problem);
    const wrong = pick(random, distractors(problem));
    const user = { role: 'user', content: question };
    preference.push(
      `${JSON.stringify({
        prompt: question,
        chosen: [user, { role: 'assistant', content: problemAnswer(problem) }],
        rejected: [user, { role: 'assistant', content: problemAnswer(problem, wrong) }],
      })}\n`,
    );
  }
  return { 'chat.jsonl': chat.join(''), 'preference.jsonl': preference.join('') };
}
