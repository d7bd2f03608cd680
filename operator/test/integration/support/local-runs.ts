/** The tiny three-stage run file the local-mode tests train (~10 s on two cores). */

export interface TinyRunOptions {
  name: string;
  /** Where the quickstart data was generated (ensureQuickstartData). */
  data: string;
  /** Stage two's budget (default 5K). */
  stageTwoTokens?: string;
  /** Stage three's metric condition (default a train.loss threshold that holds at once). */
  stageThreeCondition?: string;
}

/**
 * Stage one on its budget, stage two with an adjust rule on stage one's code loss, stage three
 * promoted by its metric condition after 2K tokens.
 */
export function tinyRunYaml(o: TinyRunOptions): string {
  const d = (n: string) => `${o.data}/buckets/smolstage/quickstart/datasets/${n}`;
  const condition = o.stageThreeCondition ?? 'metric: train.loss, below: 1000';
  return `apiVersion: smolstage.dev/v1alpha1
kind: TrainingRun
metadata: {name: ${o.name}}
spec:
  model: {preset: tiny, config: {vocabSize: 512}}
  tokenizer: {uri: ${o.data}/buckets/smolstage/quickstart/tokenizer.json}
  datasets:
    prose: {uri: ${d('prose')}}
    code: {uri: ${d('code')}}
    math: {uri: ${d('math')}}
  batch: {sequenceLength: 64, globalBatchTokens: 512, microBatchSize: 8}
  optimizer: {lr: 3.0e-3}
  checkpoint: {everySteps: 5, keepLast: 2}
  evaluation:
    everySteps: 5
    heldOutLoss: [code, math]
    heldOutSequences: 4
    tasks: [{name: arithmetic, uri: ${o.data}/buckets/smolstage/quickstart/evals/arithmetic.jsonl}]
  stages:
    - {name: one, tokens: 5K, mixture: {prose: 0.7, code: 0.3}}
    - name: two
      tokens: ${o.stageTwoTokens ?? '5K'}
      mixture: {prose: 0.5, code: 0.2, math: 0.3}
      adjust: [{when: {metric: eval.code.loss, above: 0.01}, scale: {code: 2}}]
    - name: three
      tokens: 5K
      mixture: {prose: 0.4, code: 0.2, math: 0.4}
      promotion: {anyOf: [{${condition}, afterTokens: 2K}], maxTokens: 400K}
`;
}
