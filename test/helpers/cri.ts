// A CRI client for tests, as kubelet pulls: containerd's CRI plugin resolves the registry with its own config
// (config_path), unlike ctr, which resolves in the client.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO = new URL('./proto/cri-images.proto', import.meta.url).pathname;

interface ImageServiceClient extends grpc.Client {
  PullImage(req: { image: { image: string } }, cb: (err: grpc.ServiceError | null, res?: { imageRef: string }) => void): void;
}

/** Pulls ref through CRI on containerd's socket; resolves with the image id CRI gives back. */
export async function criPull(socket: string, ref: string): Promise<string> {
  const def = protoLoader.loadSync(PROTO, { keepCase: false });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: { ImageService: new (addr: string, creds: grpc.ChannelCredentials) => ImageServiceClient } } };
  const client = new pkg.runtime.v1.ImageService(`unix:${socket}`, grpc.credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) => client.PullImage({ image: { image: ref } }, (err, res) => (err ? reject(new Error(`CRI PullImage ${ref}: ${err.message}`, { cause: err })) : resolve(res!.imageRef))));
  } finally {
    client.close();
  }
}
