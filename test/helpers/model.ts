// Calico resources as YAML text and the Model they load into, for the controller and policy tests.
import { formatIssue, loadResourcesText, type Model } from '../../config/index.js';

/** The Model of a YAML text of Calico resources; throws on any error the loader reports (warnings pass). */
export function loadModel(text: string): Model {
  const r = loadResourcesText(text, 'test.yaml');
  const errors = r.issues.filter((i) => i.severity === 'error');
  if (errors.length > 0) throw new Error(errors.map(formatIssue).join('\n'));
  return r.model;
}

/** One projectcalico.org/v3 resource as a YAML document (flow-style `spec`; `meta` adds metadata fields). */
export const resourceYaml = (kind: string, name: string, spec: string, meta = ''): string =>
  `apiVersion: projectcalico.org/v3\nkind: ${kind}\nmetadata: { name: "${name}"${meta} }\nspec: ${spec}\n---\n`;
