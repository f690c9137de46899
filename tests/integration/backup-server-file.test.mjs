// Continuous backup from a running server to a local directory (file://): the tests of
// backup-server-suite.mjs.
import { backupServerSuite } from './backup-server-suite.mjs';

backupServerSuite('file');
