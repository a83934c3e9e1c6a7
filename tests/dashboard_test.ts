/**
 * The Grafana dashboard (`dashboards/burrow.json`) against a real burrowd:
 * every metric that a panel or a template variable queries is in a live
 * `/metrics` scrape (after traffic through a tunnel, so that the per-tunnel
 * series exist), and the file has the shape Grafana 10 imports: a
 * Prometheus datasource variable that every panel uses, unique panel ids,
 * grid positions that do not overlap, a unit on every panel.
 *
 * Metric names are found by a small PromQL tokenizer: strings, label
 * matchers, ranges, Grafana variables, `by (…)`-style label lists,
 * keywords and function calls are not metric names. It knows PromQL's
 * functions, so a misspelled one fails too.
 */

import { assert, assertEquals, eventually } from "../lib/testing/mod.ts";
import { echo, echoThrough, localService, startClient, startServer, tunnelPort } from "./_procs.ts";

const TOKEN = "dashboard-token";
const DASHBOARD = new URL("../dashboards/burrow.json", import.meta.url);

/** PromQL's aggregation operators. */
const AGGREGATIONS = new Set(
  ("avg bottomk count count_values group limit_ratio limitk max min quantile stddev stdvar sum " +
    "topk").split(" "),
);
/** PromQL's functions and aggregations, and the query functions of Grafana's variables. */
const FUNCTIONS = new Set([
  ...AGGREGATIONS,
  ...("abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes " +
    "clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year " +
    "days_in_month deg delta deriv double_exponential_smoothing exp floor histogram_avg " +
    "histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar " +
    "histogram_sum holt_winters hour idelta increase info irate label_join label_replace " +
    "last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi " +
    "predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin " +
    "sinh sort sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time " +
    "stdvar_over_time sum_over_time tan tanh time timestamp vector year").split(" "),
  ..."label_values label_names metrics query_result".split(" "),
]);
/** Keywords followed by a list of label names in parentheses. */
const LABEL_LISTS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
/** Other words that are not metric names. */
const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"]);

/** A series selector in a query: its metric name and the label names it matches on. */
interface Selector {
  metric: string;
  labels: string[];
}

/** The selectors of a PromQL expression, and the names it calls that are not functions. */
function parsePromQL(expr: string): { selectors: Selector[]; unknownFunctions: string[] } {
  const selectors: Selector[] = [];
  const unknownFunctions: string[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < expr.length && /\s/.test(expr[i]!)) i++;
  };
  const skipString = () => {
    const quote = expr[i++];
    while (i < expr.length && expr[i] !== quote) i += expr[i] === "\\" && quote !== "`" ? 2 : 1;
    i++;
  };
  /** Skips to the bracket closing the one at `i`, past strings; returns what was inside. */
  const skipBlock = (close: string): string => {
    const start = ++i;
    while (i < expr.length && expr[i] !== close) {
      if (`"'\``.includes(expr[i]!)) skipString();
      else i++;
    }
    return expr.slice(start, i++);
  };
  /** Label names of a `{…}` matcher block, and the `__name__` it pins, if any. */
  const matchers = (body: string): { labels: string[]; name: string | undefined } => {
    const labels: string[] = [];
    let name: string | undefined;
    const matcher =
      /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)/g;
    for (const m of body.matchAll(matcher)) {
      if (m[1] === "__name__" && m[2] === "=") name = m[3]!.slice(1, -1);
      else labels.push(m[1]!);
    }
    return { labels, name };
  };
  while (skipSpace(), i < expr.length) {
    const c = expr[i]!;
    if (`"'\``.includes(c)) {
      skipString();
    } else if (c === "[") {
      skipBlock("]"); // a range or subquery: [$__rate_interval], [5m:1m]
    } else if (c === "{") {
      const { labels, name } = matchers(skipBlock("}")); // a selector without a name before it
      if (name) selectors.push({ metric: name, labels });
    } else if (c === "$") {
      // A Grafana variable: $name, ${name}, ${name:format}.
      const m = /^\$(\{[^}]*\}|\w+)/.exec(expr.slice(i));
      i += m ? m[0].length : 1;
    } else if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(expr[i + 1] ?? ""))) {
      while (i < expr.length && /[0-9a-zA-Z_.]/.test(expr[i]!)) i++; // 0.95, 1e3, 5m, 0x1f
    } else if (/[a-zA-Z_:]/.test(c)) {
      const start = i;
      while (i < expr.length && /[a-zA-Z0-9_:]/.test(expr[i]!)) i++;
      const word = expr.slice(start, i);
      skipSpace();
      const next = expr[i];
      if (LABEL_LISTS.has(word.toLowerCase())) {
        if (next === "(") skipBlock(")");
      } else if (KEYWORDS.has(word.toLowerCase())) {
        // An operator or modifier.
      } else if (next === "(") {
        if (!FUNCTIONS.has(word)) unknownFunctions.push(word);
      } else if (AGGREGATIONS.has(word) && /^(by|without)\s*\(/i.test(expr.slice(i))) {
        // An aggregation with its grouping first: `sum by (le) (…)`.
      } else {
        const labels = next === "{" ? matchers(skipBlock("}")).labels : [];
        selectors.push({ metric: word, labels });
      }
    } else {
      i++; // an operator, a comma, a parenthesis
    }
  }
  return { selectors, unknownFunctions };
}

/** The PromQL in a template variable's query (`label_values(selector, label)` and the like). */
function variableExpr(query: string): string {
  const q = query.trim();
  const labelValues = /^label_values\s*\(([\s\S]*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$/.exec(q);
  if (labelValues) return labelValues[1]!;
  if (/^label_values\s*\(\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$/.test(q)) return "";
  if (/^label_names\s*\(\s*\)$/.test(q)) return "";
  const result = /^query_result\s*\(([\s\S]*)\)$/.exec(q);
  return result ? result[1]! : q;
}

/** What a scrape exports: families by name with their type, and the labels of each sample name. */
function parseScrape(text: string): {
  types: Map<string, string>;
  samples: Map<string, Set<string>>;
} {
  const types = new Map<string, string>();
  const samples = new Map<string, Set<string>>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (line.startsWith("#") || line.trim() === "") continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s/.exec(line);
    if (!sample) continue;
    const labels = samples.get(sample[1]!) ?? new Set<string>();
    for (const m of (sample[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(m[1]!);
    samples.set(sample[1]!, labels);
  }
  return { types, samples };
}

/** Whether `metric` is exported: a family, or a histogram's or summary's `_bucket`/`_sum`/`_count`. */
function exported(metric: string, scrape: ReturnType<typeof parseScrape>): boolean {
  if (scrape.types.has(metric) || scrape.samples.has(metric)) return true;
  const part = /^(.*)_(bucket|sum|count)$/.exec(metric);
  if (!part) return false;
  const type = scrape.types.get(part[1]!);
  return type === "histogram" || (type === "summary" && part[2] !== "bucket");
}

interface Panel {
  id?: unknown;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { h?: unknown; w?: unknown; x?: unknown; y?: unknown };
  targets?: Array<{ expr?: string; datasource?: { type?: string; uid?: string } }>;
  fieldConfig?: { defaults?: { unit?: string } };
  panels?: Panel[];
}

interface Variable {
  type: string;
  name: string;
  query?: string | { query?: string };
  datasource?: { type?: string; uid?: string };
}

interface Dashboard {
  schemaVersion: number;
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

const dashboard: Dashboard = JSON.parse(await Deno.readTextFile(DASHBOARD));

/** Every panel, those inside collapsed rows included. */
function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every query of the dashboard, named by where it is. */
function queries(): Array<{ where: string; expr: string }> {
  const found: Array<{ where: string; expr: string }> = [];
  for (const p of allPanels(dashboard.panels)) {
    for (const t of p.targets ?? []) {
      if (t.expr) found.push({ where: `panel "${p.title}" (id ${p.id})`, expr: t.expr });
    }
  }
  for (const v of dashboard.templating.list) {
    if (v.type !== "query") continue;
    const q = typeof v.query === "string" ? v.query : v.query?.query ?? "";
    found.push({ where: `variable "$${v.name}"`, expr: variableExpr(q) });
  }
  return found;
}

Deno.test("dashboard: the PromQL tokenizer finds metric names and nothing else", () => {
  const metrics = (expr: string) => parsePromQL(expr).selectors.map((s) => s.metric);
  assertEquals(
    metrics(
      'histogram_quantile(0.95, sum by (le, type) (rate(a_bucket{instance=~"$instance"}' +
        "[$__rate_interval])))",
    ),
    ["a_bucket"],
  );
  assertEquals(metrics('sum(b{state="firing", x="y} or z"}) or vector(0)'), ["b"]);
  assertEquals(metrics("sum(rate(c[5m])) by (tunnel) / on(instance) group_left(job) d offset 1h"), [
    "c",
    "d",
  ]);
  assertEquals(metrics('{__name__="e", tunnel="t"} unless ignoring (le) f'), ["e", "f"]);
  assertEquals(metrics('label_replace(g, "dst", "$1", "src", "(.*)") > bool 1e3'), ["g"]);
  assertEquals(parsePromQL('h{tunnel=~"$tunnel", direction="in"}').selectors, [
    { metric: "h", labels: ["tunnel", "direction"] },
  ]);
  assertEquals(metrics("count without (type) (k) * max by(le)(l)"), ["k", "l"]);
  assertEquals(parsePromQL("histogram_quantil(0.5, x)").unknownFunctions, ["histogram_quantil"]);
  assertEquals(
    variableExpr('label_values(i{instance=~"$instance"}, tunnel)'),
    'i{instance=~"$instance"}',
  );
  assertEquals(variableExpr("label_values(instance)"), "");
  assertEquals(variableExpr("query_result(sum(j))"), "sum(j)");
});

Deno.test("dashboard: a Grafana 10 dashboard whose panels all use the Prometheus variable", () => {
  assert(
    dashboard.schemaVersion >= 36,
    `schemaVersion ${dashboard.schemaVersion} is before Grafana 10`,
  );
  assert(dashboard.title && dashboard.uid, "The dashboard has a title and a uid");
  const sources = dashboard.templating.list.filter((v) =>
    v.type === "datasource" && v.query === "prometheus"
  );
  assertEquals(sources.length, 1, "One datasource variable of type prometheus");
  const name = sources[0]!.name;
  const refersToIt = (ds: { type?: string; uid?: string } | undefined) =>
    ds?.type === "prometheus" && ds.uid === `\${${name}}`;

  const problems: string[] = [];
  const ids = new Set<unknown>();
  const placed: Array<{ title: string; x: number; y: number; w: number; h: number }> = [];
  const variables = new Set(dashboard.templating.list.map((v) => v.name));
  for (const v of dashboard.templating.list) {
    if (v.type === "query" && !refersToIt(v.datasource)) {
      problems.push(`Variable "$${v.name}" does not use \${${name}}`);
    }
  }
  for (const p of allPanels(dashboard.panels)) {
    const what = `Panel "${p.title}" (id ${p.id})`;
    if (typeof p.id !== "number") problems.push(`${what} has no numeric id`);
    if (ids.has(p.id)) problems.push(`${what} repeats id ${p.id}`);
    ids.add(p.id);
    const g = p.gridPos;
    if (!g || [g.h, g.w, g.x, g.y].some((n) => typeof n !== "number")) {
      problems.push(`${what} has no gridPos`);
    } else {
      const box = { title: String(p.title), x: g.x, y: g.y, w: g.w, h: g.h } as {
        title: string;
        x: number;
        y: number;
        w: number;
        h: number;
      };
      if (box.x < 0 || box.x + box.w > 24) problems.push(`${what} is outside the 24 columns`);
      for (const o of placed) {
        const overlap = box.x < o.x + o.w && o.x < box.x + box.w && box.y < o.y + o.h &&
          o.y < box.y + box.h;
        if (overlap) problems.push(`${what} overlaps panel "${o.title}"`);
      }
      placed.push(box);
    }
    if (p.type === "row") continue;
    if (!refersToIt(p.datasource)) problems.push(`${what} does not use \${${name}}`);
    if (!p.fieldConfig?.defaults?.unit) problems.push(`${what} has no unit`);
    if (!p.targets?.length) problems.push(`${what} has no query`);
    for (const t of p.targets ?? []) {
      if (!t.expr) problems.push(`${what} has a target without an expression`);
      if (t.datasource && !refersToIt(t.datasource)) {
        problems.push(`${what} has a target that does not use \${${name}}`);
      }
    }
  }
  for (const { where, expr } of queries()) {
    for (const m of expr.matchAll(/\$\{?([a-zA-Z_]\w*)/g)) {
      if (!m[1]!.startsWith("__") && !variables.has(m[1]!)) {
        problems.push(`The query of ${where} uses "$${m[1]}", which is no variable`);
      }
    }
    for (const f of parsePromQL(expr).unknownFunctions) {
      problems.push(`The query of ${where} calls "${f}", which is no PromQL function`);
    }
  }
  assertEquals(problems, []);
});

Deno.test("dashboard: every metric the dashboard queries is in a live /metrics scrape", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-dashboard-" });
  try {
    await using service = localService(echo);
    const server = await startServer(dir, TOKEN);
    await using _server = server.proc;
    const admin = (await server.proc.waitFor((e) => e.msg === "admin listening")).port as number;
    await using client = await startClient(dir, {
      port: server.port,
      token: TOKEN,
      fingerprint: server.fingerprint,
      tunnels: [{ name: "dash", local_port: service.port }],
    });
    const port = await tunnelPort(client, "dash");
    assertEquals(await echoThrough(port, "hello dashboard"), "hello dashboard");

    // The ended connection reaches the counters at the next scrape.
    const text = await eventually("the tunnel's traffic in /metrics", async () => {
      const r = await fetch(`http://127.0.0.1:${admin}/metrics`);
      const body = await r.text();
      const seen = /burrow_tunnel_bytes_total\{tunnel="admin\/dash",direction="out"\} [1-9]/
        .test(body) &&
        /burrow_connections_total\{tunnel="admin\/dash",result="ok"\} [1-9]/.test(body);
      return seen ? body : undefined;
    });
    const scrape = parseScrape(text);

    const missing: string[] = [];
    for (const { where, expr } of queries()) {
      for (const { metric, labels } of parsePromQL(expr).selectors) {
        if (!exported(metric, scrape)) {
          missing.push(`${where} queries "${metric}", which /metrics does not export`);
          continue;
        }
        // Where the scrape has samples, the labels matched on are theirs (or Prometheus's own).
        const sampled = scrape.samples.get(metric);
        if (!sampled) continue;
        for (const label of labels) {
          if (!sampled.has(label) && label !== "instance" && label !== "job") {
            missing.push(
              `${where} matches "${metric}" on label "${label}", which it does not have`,
            );
          }
        }
      }
    }
    assertEquals(missing, []);
    assert(queries().length > 20, "The dashboard's queries were found");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
