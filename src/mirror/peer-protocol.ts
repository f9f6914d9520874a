// The peer data plane's wire vocabulary, shared by its server, its clients and replication.

/** Blobs this node holds, whole or as far as they have arrived: GET or HEAD with the membership proof. */
export const BLOB_PATH = '/peer/v1/blobs/';
/**
 * Several blobs on one stream, back to back in the order asked: POST {"blobs": [{digest, size, offset?, length?}, ...],
 * "level"?: SequenceLevel}; with offset and length, only that range of the blob (a stripe of it, see
 * src/node/replication-plan.ts). With level, the asker is a tree's root taking its stripe from the node pushed to,
 * which keeps the roots' sequences level (level-sends.ts).
 */
export const SEQUENCE_PATH = '/peer/v1/sequence';
/** The sequences of one push's trees' roots: `key` the pushed manifest's digest, `lane` the stripe, of `lanes` levelled together. */
export interface SequenceLevel {
  key: string;
  lane: number;
  lanes: number;
}
/** The most lanes a levelled sequence may name. */
export const MAX_LANES = 64;
/** The manifest this node holds under an image name: GET ?name=<image>. */
export const IMAGES_PATH = '/peer/v1/images';

/**
 * Request header of a replicating (patient) fetch, carrying the requester's peer id: a holder already
 * sending a large blob may answer 503 instead, naming in TRY_HEADER the peers it is sending it to
 * (they hold the first part already and serve it as it arrives).
 */
export const PATIENT_HEADER = 'x-layermesh-patient';
export const TRY_HEADER = 'x-layermesh-try';
/**
 * A blob at least this large is sent to one patient peer at a time (the others are redirected to the
 * copies it is feeding) and replicated along a pipeline of nodes; smaller ones (configs, manifests) are
 * not worth queueing. A much higher threshold sends mid-sized layers straight to every node and makes the
 * pushed node's uplink the bottleneck of the whole fan-out.
 */
export const PIPELINE_MIN_BYTES = 256 << 10;
/**
 * A patient peer asking for a blob this node does not have yet is the next in a replication pipeline,
 * asking before this node's own copy begins to arrive (which waits for the node before it, and so on):
 * it is kept waiting this long before it is sent elsewhere.
 */
export const AWAIT_COPY_MS = 10_000;
/**
 * Request header of a range asked only of a holder of the whole blob (a replication's endgame, see
 * mirror/lanes.ts): a holder still receiving it answers once it is whole, or 404 after AWAIT_WHOLE_MS.
 */
export const WHOLE_HEADER = 'x-layermesh-whole';
export const AWAIT_WHOLE_MS = 5_000;
/** What one sequence may ask for: distinct blobs, so a small request cannot make a member send one blob over and over. */
export const MAX_SEQUENCE_BLOBS = 1000;
export const MAX_SEQUENCE_BYTES = 64 * 1024 ** 3;
/** A request body at most: a sequence of MAX_SEQUENCE_BLOBS pieces takes about 140 KB. */
export const MAX_BODY_BYTES = 256 << 10;
/** A request body must have come whole within this long: its proof can be checked only then. */
export const BODY_TIMEOUT_MS = 10_000;

/** A byte range of a blob, as a sequence asks for it. */
export interface Piece {
  digest: string;
  /** The whole blob's size. */
  size: number;
  offset: number;
  length: number;
}
