// Continuous backup from a running server to a real s3rver process on 127.0.0.1: the tests of
// backup-server-suite.mjs.
import { backupServerSuite } from './backup-server-suite.mjs';

backupServerSuite('s3');
