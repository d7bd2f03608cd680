/**
 * `/healthz` (the process is alive and its loops turn), `/readyz` (this replica is useful:
 * caches synced when leading, or standing by as a healthy candidate) and `/metrics`.
 * Health and metrics may share a port or use two. Serves the operator's probes and metrics and
 * the worker's metrics.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface Probes {
  healthy: () => boolean;
  ready: () => boolean;
}

export interface ProbeServerOptions {
  /** 0: any free port. */
  port: number;
  /** Address to bind; absent: every interface (IPv6 and IPv4 where the host has them). */
  host?: string;
  probes?: Probes;
  registry?: Registry;
}

export async function startProbeServer(
  options: ProbeServerOptions,
): Promise<{ server: Server; port: number; close: () => Promise<void> }> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const reply = (status: number, body: string, contentType = 'text/plain; charset=utf-8') => {
      response.writeHead(status, { 'Content-Type': contentType });
      response.end(body);
    };
    if (options.probes !== undefined && path === '/healthz') {
      const ok = options.probes.healthy();
      reply(ok ? 200 : 503, ok ? 'ok\n' : 'unhealthy\n');
    } else if (options.probes !== undefined && path === '/readyz') {
      const ok = options.probes.ready();
      reply(ok ? 200 : 503, ok ? 'ok\n' : 'not ready\n');
    } else if (options.registry !== undefined && path === '/metrics') {
      const registry = options.registry;
      registry.metrics().then(
        (text) => reply(200, text, registry.contentType),
        () => reply(500, 'metrics unavailable\n'),
      );
    } else {
      reply(404, 'not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: options.port, host: options.host }, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
