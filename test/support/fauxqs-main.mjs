// Runs fauxqs's S3 (an S3-compatible server from npm, in memory) on 127.0.0.1 only, on the
// port given as the first argument; prints "listening" once it accepts connections.
import { buildApp } from 'fauxqs';

const port = Number(process.argv[2]);
const app = buildApp({ logger: false });
await app.listen({ port, host: '127.0.0.1' });
process.stdout.write('listening\n');
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    void app.close().then(() => process.exit(0));
  });
}
