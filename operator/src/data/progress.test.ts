import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProgressBar } from './progress.js';

test('on a terminal the bar redraws in place and ends the line when finished', () => {
  const written: string[] = [];
  const bar = new ProgressBar('prepare', 2_000_000, { isTTY: true, write: (text) => written.push(text) });
  bar.advance(1_000_000, 250_000);
  bar.finish();
  assert.ok(written.every((line) => line.startsWith('\r')));
  assert.match(
    written.at(-1) as string,
    /^\rprepare \[#{15}\.{15}\] 50\.0% {2}1\.00MB\/2\.00MB {2}250\.0k tokens .* tok\/s\n$/,
  );
});

test('elsewhere (logs) it writes whole lines, not carriage returns', () => {
  const written: string[] = [];
  const bar = new ProgressBar('prepare', 10, { isTTY: false, write: (text) => written.push(text) });
  bar.advance(10, 5);
  bar.finish();
  assert.ok(written.length >= 1);
  for (const line of written) assert.match(line, /^prepare \[.*\] .*\n$/);
  assert.match(written.at(-1) as string, /100\.0%/);
});
