// Pieces the etcd client's tests share (test/config/etcd-client, test/config/h2client): a canned gRPC answer and a
// way to get the GrpcError a call must end with.
import { GrpcError } from '../../config/etcdclient.js';

/** RangeResponse { header { revision: 5 }, kvs [{ key: "k", value: "v", mod_revision: 5 }] } */
export const RANGE_OK = Buffer.from([0x0a, 0x02, 0x18, 0x05, 0x12, 0x08, 0x0a, 0x01, 0x6b, 0x18, 0x05, 0x2a, 0x01, 0x76]);

/** The GrpcError `p` is rejected with; anything else (another error, or success) fails the test. */
export const failure = async (p: Promise<unknown>): Promise<GrpcError> => {
  try {
    await p;
  } catch (e) {
    if (e instanceof GrpcError) return e;
    throw e;
  }
  throw new Error('the call succeeded');
};
