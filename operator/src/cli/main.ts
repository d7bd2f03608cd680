/**
 * `smolstage <command>`: a thin dispatcher. Each command lives in its own module exporting
 * `run(argv): Promise<number>` and is imported only when used, so `smolstage worker` never
 * loads the Kubernetes client and `smolstage operator` never loads the native trainer.
 */
export interface Command {
  summary: string;
  load: () => Promise<{ run: (argv: string[]) => Promise<number> }>;
}

export const commands: Record<string, Command> = {
  data: {
    summary: 'tokenizers, token shards, evaluation tasks, quickstart data',
    load: () => import('./data.js'),
  },
  worker: {
    summary: 'train one stage attempt from a trainer spec (the trainer pod)',
    load: () => import('./worker.js'),
  },
  export: {
    summary: "export the run's final checkpoint as a Hugging Face model (the export Job)",
    load: () => import('./export.js'),
  },
  generate: {
    summary: 'generate text with an exported model or a checkpoint (chat template, KV cache)',
    load: () => import('./generate.js'),
  },
  operator: {
    summary: 'run the TrainingRun controller against a cluster',
    load: () => import('./operator.js'),
  },
  run: {
    summary: 'run a TrainingRun on this machine (default: the CPU quickstart)',
    load: () => import('./run.js'),
  },
  report: {
    summary: "a run's report: HTML and PNG charts of losses, evals, promotions, mixtures, checkpoints",
    load: () => import('./report.js'),
  },
};

export function usage(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return [
    'usage: smolstage <command> [options]',
    '',
    'commands:',
    ...rows,
    '',
    "Run `smolstage <command> --help` for a command's options.",
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (command === undefined) {
    console.error(`smolstage: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  const module = await command.load();
  return module.run(rest);
}
