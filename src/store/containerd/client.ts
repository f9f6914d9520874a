// gRPC plumbing for containerd: one connection over the unix socket, our minimal protos,
// the metadata headers every call needs, and errors that name the operation and the socket.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import { StoreFullError, StoreUnavailableError } from '../store.js';

const PROTO_DIR = fileURLToPath(new URL('./proto/', import.meta.url));
const PROTO_FILES = ['content.proto', 'images.proto', 'leases.proto', 'events.proto', 'introspection.proto', 'version.proto', 'containers.proto'];

const SERVICES = {
  content: 'containerd.services.content.v1.Content',
  images: 'containerd.services.images.v1.Images',
  leases: 'containerd.services.leases.v1.Leases',
  events: 'containerd.services.events.v1.Events',
  introspection: 'containerd.services.introspection.v1.Introspection',
  version: 'containerd.services.version.v1.Version',
  containers: 'containerd.services.containers.v1.Containers',
} as const;
export type Service = keyof typeof SERVICES;

const UNARY_DEADLINE_MS = 60_000;
export { status as Code } from '@grpc/grpc-js';

export class ContainerdError extends Error {
  constructor(readonly op: string, readonly code: grpc.status, readonly socket: string, cause: unknown) {
    const details = (cause as Partial<grpc.ServiceError>)?.details ?? (cause instanceof Error ? cause.message : String(cause));
    super(`containerd ${op}: ${grpc.status[code] ?? code}: ${details} (socket ${socket})`, { cause });
    this.name = 'ContainerdError';
  }
}

export function hasCode(err: unknown, code: grpc.status): boolean {
  const e = err instanceof StoreUnavailableError ? err.cause : err;
  return e instanceof ContainerdError && e.code === code;
}

/** The call's result, or undefined when containerd says the thing does not exist. */
export async function unlessNotFound<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (err) {
    if (hasCode(err, grpc.status.NOT_FOUND)) return undefined;
    throw err;
  }
}

export interface CallOptions {
  /** Sent as `containerd-lease`: what the call creates is held by that lease. */
  lease?: string;
  deadlineMs?: number;
}

type Method = protoLoader.MethodDefinition<object, object>;

export class ContainerdClient {
  private constructor(
    readonly socket: string,
    readonly namespace: string,
    private readonly client: grpc.Client,
    private readonly defs: protoLoader.PackageDefinition,
  ) {}

  /** Connects and checks that containerd answers (version service) before returning. */
  static async connect(socket: string, namespace: string): Promise<ContainerdClient> {
    const defs = await protoLoader.load(PROTO_FILES, {
      includeDirs: [PROTO_DIR], keepCase: false, longs: Number, enums: String, defaults: true,
    });
    const client = new grpc.Client(`unix:${socket}`, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 16 << 20,
    });
    const self = new ContainerdClient(socket, namespace, client, defs);
    try {
      await self.unary('version', 'Version', {}, '', { deadlineMs: 5_000 });
    } catch (err) {
      client.close();
      throw new Error(`containerd does not answer on ${socket}: ${(err as Error).message}`, { cause: err });
    }
    return self;
  }

  unary<Res>(svc: Service, name: string, req: object, what: string, opts: CallOptions = {}): Promise<Res> {
    const m = this.method(svc, name);
    const op = `${svc}.${name} ${what}`.trim();
    const options = { deadline: Date.now() + (opts.deadlineMs ?? UNARY_DEADLINE_MS) };
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, this.metadata(opts.lease),
        options, (err, res) => (err ? reject(this.error(op, err)) : resolve(res as Res)));
    });
  }

  /** A server stream; wrap its errors with error(). */
  serverStream<Res>(svc: Service, name: string, req: object, opts: CallOptions = {}): grpc.ClientReadableStream<Res> {
    const m = this.method(svc, name);
    return this.client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, req,
      this.metadata(opts.lease), {}) as grpc.ClientReadableStream<Res>;
  }

  /** A bidirectional stream; a request written as a Buffer goes out as it is (encoded by the caller). */
  bidi<Req, Res>(svc: Service, name: string, opts: CallOptions = {}): grpc.ClientDuplexStream<Req, Res> {
    const m = this.method(svc, name);
    const serialize = (req: object) => (Buffer.isBuffer(req) ? req : m.requestSerialize(req));
    return this.client.makeBidiStreamRequest(m.path, serialize, m.responseDeserialize,
      this.metadata(opts.lease), {}) as unknown as grpc.ClientDuplexStream<Req, Res>;
  }

  /** Gives a gRPC failure its context; passes other errors through. */
  error(op: string, err: unknown): Error {
    if (err instanceof ContainerdError) return err;
    const code = (err as Partial<grpc.ServiceError>)?.code;
    if (typeof code !== 'number') return err instanceof Error ? err : new Error(String(err));
    // containerd passes the errno of a failed write on only as text.
    if (/no space left on device|disk quota exceeded/i.test((err as Error).message)) return new StoreFullError(`containerd ${op}`, { cause: err });
    const failed = new ContainerdError(op, code, this.socket, err);
    // Not listening (stopped, restarting) or busy: a client may try again.
    return code === grpc.status.UNAVAILABLE ? new StoreUnavailableError(`containerd ${op}`, { cause: failed }) : failed;
  }

  close(): void {
    this.client.close();
  }

  private metadata(lease?: string): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set('containerd-namespace', this.namespace);
    if (lease) md.set('containerd-lease', lease);
    return md;
  }

  private method(svc: Service, name: string): Method {
    const def = (this.defs[SERVICES[svc]] as protoLoader.ServiceDefinition | undefined)?.[name];
    if (!def) throw new Error(`no gRPC method ${SERVICES[svc]}/${name} in ${PROTO_DIR}`);
    return def as Method;
  }
}
