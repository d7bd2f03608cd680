/**
 * A tiny chat model for the generate tests: the quickstart's arithmetic conversations rendered
 * with ChatML and the small test tokenizer, a GQA model of the SmolLM2 architecture trained on
 * them for a few seconds (so greedy replies look like `a op b = n<|im_end|>`), saved both as a
 * checkpoint of ours and as a complete Hugging Face export.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ModelConfig, Trainer } from '@smolstage/trainer-native';
import {
  chatTemplateFromConfig,
  TOKENIZER_CONFIG_NAME,
  trainedTokenizerConfig,
} from '../../data/chat-template.js';
import { generateChatQuickstart } from '../../data/quickstart.js';
import { smallTokenizer } from '../../data/testdata/support.js';
import type { TextTokenizer } from '../../data/tokenizer.js';
import { writeHfFiles } from '../../export/hf-files.js';

export interface ChatModel {
  /** An export: model.safetensors, config.json, tokenizer.json, tokenizer_config.json, generation_config.json … */
  exportDir: string;
  /** A checkpoint: model.safetensors, config.json, optimizer.bin (no tokenizer). */
  checkpointDir: string;
  /** tokenizer.json with a ChatML tokenizer_config.json beside it. */
  tokenizerPath: string;
  tokenizer: TextTokenizer;
  config: ModelConfig;
}

const SEQ_LEN = 64;
const BATCH = 8;

export async function makeChatModel(dir: string, steps = 150): Promise<ChatModel> {
  const tokenizer = await smallTokenizer();
  const configText = trainedTokenizerConfig(128);
  const template = chatTemplateFromConfig(configText, 'test tokenizer_config.json');
  const tokenizerDir = join(dir, 'tokenizer');
  await mkdir(tokenizerDir, { recursive: true });
  const tokenizerPath = join(tokenizerDir, 'tokenizer.json');
  await writeFile(tokenizerPath, tokenizer.json);
  await writeFile(join(tokenizerDir, TOKENIZER_CONFIG_NAME), configText);

  const stream: number[] = [];
  const chat = generateChatQuickstart(400, 1, 5)['chat.jsonl'].trim().split('\n');
  for (const line of chat) {
    const { messages } = JSON.parse(line) as { messages: { role: string; content: string }[] };
    stream.push(...(await tokenizer.encodeWithOffsets(template.render(messages, false, 'fixture'))).ids);
  }
  const config: ModelConfig = {
    hiddenSize: 64,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 128,
    vocabSize: tokenizer.vocabSize,
    ropeTheta: 10000,
    rmsNormEps: 1e-5,
    tieEmbeddings: true,
    maxPositionEmbeddings: 128,
    initializerRange: 0.02,
  };
  const trainer = Trainer.create({
    model: config,
    optimizer: { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0, gradClip: 1 },
    schedule: {
      peakLr: 1e-2,
      warmupSteps: 10,
      decayStartStep: null,
      decaySteps: 0,
      shape: 'linear',
      minLr: 0,
    },
    seed: 7,
    threads: 2,
  });
  const row = SEQ_LEN + 1;
  const batch = new Uint32Array(BATCH * row);
  let at = 0;
  for (let s = 0; s < steps; s++) {
    for (let r = 0; r < BATCH; r++) {
      if (at + row > stream.length) at = 0;
      batch.set(stream.slice(at, at + row), r * row);
      at += row;
    }
    await trainer.step(batch, { batchSize: BATCH, microBatchSize: BATCH, seqLen: SEQ_LEN });
  }
  const checkpointDir = join(dir, 'checkpoint');
  await trainer.saveState(checkpointDir);
  const exportDir = join(dir, 'export');
  await trainer.exportHF(exportDir);
  trainer.dispose();
  await writeFile(join(exportDir, 'tokenizer.json'), tokenizer.json);
  await writeHfFiles({
    outDir: exportDir,
    tokenizerPath,
    tokenizerConfigPath: join(tokenizerDir, TOKENIZER_CONFIG_NAME),
    maxPositionEmbeddings: config.maxPositionEmbeddings,
    dtype: 'float32',
  });
  return { exportDir, checkpointDir, tokenizerPath, tokenizer, config };
}
