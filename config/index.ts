// The public surface of config/: skein.yaml and Calico's resources from a file or etcd.
export {
  parseSelector, printSelector, evaluateSelector, compileSelector, matches, SelectorSyntaxError,
  type SelectorNode, type Selector, type Labels,
} from './selector.js';
export {
  parseASNumber, parseDuration, formatDuration, parseIP, parseIPWithPrefix, parseCIDR, parseCommunity,
  cidrToKeyPart, keyPartToCidr, cidrFamily, ValueError, MAX_ASN, type Prefix, type Family,
} from './values.js';
