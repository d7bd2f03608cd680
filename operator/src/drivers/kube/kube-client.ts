/**
 * The operator's one door to the API server. Every request — typed client calls, lists and
 * watches — goes through one counting HTTP library, so the benchmark and `/metrics` can say
 * exactly how many requests the operator makes and of which kind.
 */
import {
  ApiException,
  BatchV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  createConfiguration,
  EventsV1Api,
  type HttpLibrary,
  HttpMethod,
  IsomorphicFetchHttpLibrary,
  type KubeConfig,
  Observable,
  RequestContext,
  type ResponseContext,
  ServerConfiguration,
} from '@kubernetes/client-node';

export type RequestKind = 'watch' | 'list' | 'get' | 'create' | 'update' | 'patch' | 'delete';

export interface RequestRecord {
  kind: RequestKind;
  /** Resource plural from the URL path (e.g. `leases`, `trainingruns`, `jobs`). */
  resource: string;
  /** HTTP status of the answer, or `error` when none came (timeout, connection failure). */
  status: number | 'error';
}

export type RequestListener = (request: RequestRecord) => void;

/** Classifies a request the way the API server's audit log would (verb + resource). */
export function classifyRequest(method: string, url: string): { kind: RequestKind; resource: string } {
  const parsed = new URL(url);
  const segments = parsed.pathname.split('/').filter((s) => s !== '');
  const isWatch = parsed.searchParams.get('watch') === 'true';
  // /api/v1/namespaces/ns/pods/name[/status] or /apis/g/v/namespaces/ns/plural[/name[/sub]]
  const afterVersion = segments[0] === 'api' ? segments.slice(2) : segments.slice(3);
  const rest =
    afterVersion[0] === 'namespaces' && afterVersion.length > 2 ? afterVersion.slice(2) : afterVersion;
  const resource = rest[0] ?? '';
  const named = rest.length >= 2;
  switch (method.toUpperCase()) {
    case 'GET':
      return { kind: isWatch ? 'watch' : named ? 'get' : 'list', resource };
    case 'POST':
      return { kind: 'create', resource };
    case 'PUT':
      return { kind: 'update', resource };
    case 'PATCH':
      return { kind: 'patch', resource };
    default:
      return { kind: 'delete', resource };
  }
}

class CountingHttpLibrary implements HttpLibrary {
  private readonly inner = new IsomorphicFetchHttpLibrary();
  constructor(
    private readonly listeners: RequestListener[],
    private readonly timeoutMs: number,
  ) {}

  send(request: RequestContext) {
    const { kind, resource } = classifyRequest(request.getHttpMethod(), request.getUrl());
    // A hung API server must not hold a reconcile (or the lease loop) forever; watches bring
    // their own signal.
    if (request.getSignal() === undefined) request.setSignal(AbortSignal.timeout(this.timeoutMs));
    const notify = (status: number | 'error') => {
      for (const listener of this.listeners) listener({ kind, resource, status });
    };
    const sent = this.inner
      .send(request)
      .toPromise()
      .then(
        (response) => {
          notify(response.httpStatusCode);
          return response;
        },
        (error: unknown) => {
          // Timeouts and connection failures count too: they are requests the server may have seen.
          notify('error');
          throw error;
        },
      );
    return new Observable(sent);
  }
}

export class KubeClient {
  readonly custom: CustomObjectsApi;
  readonly batch: BatchV1Api;
  readonly core: CoreV1Api;
  readonly coordination: CoordinationV1Api;
  readonly events: EventsV1Api;
  private readonly listeners: RequestListener[] = [];
  private readonly http: CountingHttpLibrary;
  private readonly server: string;

  constructor(
    readonly kubeConfig: KubeConfig,
    options: { requestTimeoutMs?: number } = {},
  ) {
    const cluster = kubeConfig.getCurrentCluster();
    if (cluster === null)
      throw new Error('the kubeconfig has no current cluster: set current-context or pass --kubeconfig');
    this.server = cluster.server.replace(/\/+$/, '');
    this.http = new CountingHttpLibrary(this.listeners, options.requestTimeoutMs ?? 30_000);
    const configuration = createConfiguration({
      baseServer: new ServerConfiguration(this.server, {}),
      authMethods: { default: kubeConfig },
      httpApi: this.http,
    });
    this.custom = new CustomObjectsApi(configuration);
    this.batch = new BatchV1Api(configuration);
    this.core = new CoreV1Api(configuration);
    this.coordination = new CoordinationV1Api(configuration);
    this.events = new EventsV1Api(configuration);
  }

  onRequest(listener: RequestListener): void {
    this.listeners.push(listener);
  }

  /**
   * A raw GET for lists and watches (paths the informers build themselves). Resolves with the
   * response once headers arrive; the caller reads or streams the body.
   */
  async get(pathAndQuery: string, signal?: AbortSignal): Promise<ResponseContext> {
    const context = new RequestContext(`${this.server}${pathAndQuery}`, HttpMethod.GET);
    context.setHeaderParam('Accept', 'application/json');
    if (signal !== undefined) context.setSignal(signal);
    await this.kubeConfig.applySecurityAuthentication(context);
    return this.http.send(context).toPromise();
  }
}

/** The HTTP status of a failed API call, or undefined for network errors and timeouts. */
export function apiStatus(error: unknown): number | undefined {
  if (error instanceof ApiException) return error.code;
  if (typeof error === 'object' && error !== null) {
    const candidate =
      (error as { statusCode?: unknown; code?: unknown }).statusCode ?? (error as { code?: unknown }).code;
    if (typeof candidate === 'number') return candidate;
  }
  return undefined;
}

/** A short message for logs: the API server's Status message when there is one, never a body dump. */
export function describeError(error: unknown): string {
  if (error instanceof ApiException) {
    const body = error.body as unknown;
    let message: string | undefined;
    if (typeof body === 'string') {
      try {
        message = (JSON.parse(body) as { message?: string }).message;
      } catch {
        message = undefined;
      }
    } else if (typeof body === 'object' && body !== null) {
      message = (body as { message?: string }).message;
    }
    return `HTTP ${error.code}${message ? `: ${message}` : ''}`;
  }
  return error instanceof Error ? error.message : String(error);
}
