/**
 * Model presets by name, read from trainer-native/presets.json: the one source, which the
 * native trainer embeds at build time (its `presetConfig` returns the same rows) and the operator
 * imports here without loading the native addon. The SmolLM2 rows are the published Hugging Face
 * configs, the others the same architecture at CPU-test size.
 */
import presetsFile from '@smolstage/trainer-native/presets.json' with { type: 'json' };
import { MODEL_FIELDS } from './crd-schema.js';
import type { ModelConfig } from './trainer-spec.js';
import type { ModelPreset, ModelSpec } from './types.js';

// Typed against ModelPreset: a name in MODEL_PRESETS without a row in the file fails to compile.
export const PRESETS: Record<ModelPreset, ModelConfig> = presetsFile.presets;

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
