// Checks a Grafana dashboard JSON against Grafana's own schema as it ships in @grafana/schema (Apache-2.0): the
// TypeScript types Grafana generates from its CUE schema (the `Dashboard` kind, and each core panel plugin's
// `Options` and `FieldConfig`). The dashboard's JSON is put as an object literal where those types are expected and
// the TypeScript compiler judges it: a field of the wrong type, a value outside an enumeration, a missing required
// field or a field the schema does not know (an excess property) is an error. No Grafana is needed.
import { join } from 'node:path';
import ts from 'typescript';

/** The core panel plugins whose options this check knows (the schema's composable panelcfg types). */
const PANELS: Readonly<Record<string, string>> = {
  timeseries: 'timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen',
  table: 'table/panelcfg/x/TablePanelCfg_types.gen',
  stat: 'stat/panelcfg/x/StatPanelCfg_types.gen',
};

/** The type errors of `dashboard` against Grafana's schema; [] when it conforms. `root`: where node_modules is. */
export function grafanaSchemaErrors(dashboard: unknown, root: string): string[] {
  const d = dashboard as { panels?: { type?: string; options?: unknown; fieldConfig?: { defaults?: { custom?: unknown } } }[] };
  // Grafana's types use TypeScript enums for some enumerations (TooltipDisplayMode, SortOrder, ...), which a JSON
  // string never matches; Json<T> turns every enum into the union of its string values and leaves the rest as is.
  const lines = [
    "import type { Dashboard } from '@grafana/schema';",
    'type Json<T> = 0 extends 1 & T ? T : T extends string ? `${T}` : T extends readonly (infer U)[] ? Json<U>[] : T extends object ? { [K in keyof T]: Json<T[K]> } : T;',
  ];
  const used = new Set((d.panels ?? []).map((p) => p.type ?? '')).values();
  for (const type of used) {
    const mod = PANELS[type];
    if (mod === undefined) return [`panel type "${type}" is not one this check knows (${Object.keys(PANELS).join(', ')})`];
    lines.push(`import type { Options as ${type}Options, FieldConfig as ${type}FieldConfig } from '@grafana/schema/dist/esm/raw/composable/${mod}';`);
  }
  lines.push(`export const dashboard: Json<Dashboard> = ${JSON.stringify(dashboard, null, 1)};`);
  (d.panels ?? []).forEach((p, i) => {
    if (p.options !== undefined) lines.push(`export const options${i}: Json<${p.type}Options> = ${JSON.stringify(p.options)};`);
    if (p.fieldConfig?.defaults?.custom !== undefined) lines.push(`export const custom${i}: Json<${p.type}FieldConfig> = ${JSON.stringify(p.fieldConfig.defaults.custom)};`);
  });
  const source = lines.join('\n');
  const file = join(root, `.grafana-schema-check-${process.pid}.ts`);
  const options: ts.CompilerOptions = {
    strict: true, noEmit: true, skipLibCheck: true, types: [], target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
  };
  const host = ts.createCompilerHost(options);
  const { fileExists, readFile, getSourceFile } = host;
  host.fileExists = (f) => f === file || fileExists.call(host, f);
  host.readFile = (f) => (f === file ? source : readFile.call(host, f));
  host.getSourceFile = (f, lang, ...rest) => (f === file ? ts.createSourceFile(f, source, lang) : getSourceFile.call(host, f, lang, ...rest));
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((x) => {
    const where = x.file && x.start !== undefined ? x.file.getLineAndCharacterOfPosition(x.start) : undefined;
    const near = where !== undefined && x.file === program.getSourceFile(file) ? ` near: ${source.split('\n')[where.line]!.trim().slice(0, 120)}` : '';
    return `${ts.flattenDiagnosticMessageText(x.messageText, ' ')}${near}`;
  });
}
