/**
 * Model presets by name. This table must match `presetConfig` in @smolstage/trainer-native
 * (trainer-native/src/core/config.cpp): the operator never loads the native addon, so it keeps
 * its own copy, and presets.test.ts compares the two. The SmolLM2 rows are the published
 * Hugging Face configs, the others the same architecture at CPU-test size.
 */
import type { ModelConfig } from './trainer-spec.js';
import type { ModelPreset, ModelSpec } from './types.js';

const smollm2 = { vocabSize: 49152, rmsNormEps: 1e-5, tieEmbeddings: true, maxPositionEmbeddings: 8192 };

/** Same vocabulary as SmolLM2 (so the tiny models train on the same shards), far smaller. */
function tiny(
  hiddenSize: number,
  numLayers: number,
  numHeads: number,
  numKvHeads: number,
  intermediateSize: number,
): ModelConfig {
  return {
    ...smollm2,
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads,
    intermediateSize,
    ropeTheta: 10000,
    maxPositionEmbeddings: 2048,
    initializerRange: 0.02,
  };
}

export const PRESETS: Record<ModelPreset, ModelConfig> = {
  'smollm2-135m': {
    ...smollm2,
    hiddenSize: 576,
    numLayers: 30,
    numHeads: 9,
    numKvHeads: 3,
    intermediateSize: 1536,
    ropeTheta: 100000,
    initializerRange: 0.041666666666666664,
  },
  'smollm2-360m': {
    ...smollm2,
    hiddenSize: 960,
    numLayers: 32,
    numHeads: 15,
    numKvHeads: 5,
    intermediateSize: 2560,
    ropeTheta: 100000,
    initializerRange: 0.02,
  },
  'smollm2-1.7b': {
    ...smollm2,
    hiddenSize: 2048,
    numLayers: 24,
    numHeads: 32,
    numKvHeads: 32,
    intermediateSize: 8192,
    ropeTheta: 130000,
    initializerRange: 0.02,
  },
  tiny: tiny(64, 2, 4, 4, 256),
  'tiny-gqa': tiny(128, 4, 4, 2, 384),
  small: tiny(256, 6, 8, 2, 768),
};

const MODEL_FIELDS: (keyof ModelConfig)[] = [
  'hiddenSize',
  'numLayers',
  'numHeads',
  'numKvHeads',
  'intermediateSize',
  'vocabSize',
  'ropeTheta',
  'rmsNormEps',
  'tieEmbeddings',
  'maxPositionEmbeddings',
  'initializerRange',
];

export type ResolvedModel = { ok: true; config: ModelConfig } | { ok: false; problems: string[] };

/** The preset (if any) with `config` fields laid over it; names every missing or inconsistent field. */
export function resolveModel(model: ModelSpec): ResolvedModel {
  const problems: string[] = [];
  let base: Partial<ModelConfig> = {};
  if (model.preset !== undefined) {
    const preset = PRESETS[model.preset];
    if (preset === undefined) {
      return {
        ok: false,
        problems: [
          `spec.model.preset '${model.preset}' is unknown; use one of ${Object.keys(PRESETS).join(', ')}`,
        ],
      };
    }
    base = preset;
  }
  const merged: Partial<ModelConfig> = { ...base, ...model.config };
  const missing = MODEL_FIELDS.filter((f) => merged[f] === undefined);
  if (missing.length > 0) {
    problems.push(
      `spec.model.config is missing ${missing.join(', ')}; give a spec.model.preset or every architecture field`,
    );
    return { ok: false, problems };
  }
  const config = merged as ModelConfig;
  if (config.hiddenSize % config.numHeads !== 0) {
    problems.push(`model hiddenSize ${config.hiddenSize} is not divisible by numHeads ${config.numHeads}`);
  } else if ((config.hiddenSize / config.numHeads) % 2 !== 0) {
    problems.push(
      `model head size ${config.hiddenSize / config.numHeads} must be even for rotary embeddings`,
    );
  }
  if (config.numHeads % config.numKvHeads !== 0) {
    problems.push(`model numHeads ${config.numHeads} is not divisible by numKvHeads ${config.numKvHeads}`);
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, config };
}
