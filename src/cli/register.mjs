// Loads TypeScript sources through tsx, resolved from this package.
import { register } from 'tsx/esm/api';

register();
