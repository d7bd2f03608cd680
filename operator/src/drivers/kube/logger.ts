/**
 * Structured JSON logs (one object per line) for the operator. Reconcile logs are child
 * loggers carrying `run` (namespace/name) and `stage`, so `jq 'select(.run=="ns/x")'` follows
 * one run through promotions.
 */
import winston from 'winston';

export type Logger = winston.Logger;

export function createLogger(level = process.env.SMOLSTAGE_LOG_LEVEL ?? 'info', silent = false): Logger {
  return winston.createLogger({
    level,
    silent,
    format: winston.format.combine(
      winston.format.timestamp(),
      winston.format.errors({ stack: false }),
      winston.format.json(),
    ),
    defaultMeta: { component: 'operator' },
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn'] })],
  });
}
