// Compile KQL queries with Microsoft's Kusto language service (@kusto/language-service-next,
// pinned in package.json) against given table schemas, and say what each query reads.
//
// One process for every query: reads one JSON document on stdin,
//   {"tables": {"AppMetrics": [["Name", "string"], ...], ...},
//    "queries": {"<name>": "<KQL>", ...}}
// and writes one on stdout,
//   {"<name>": {"diagnostics": [{"severity", "code", "message", "excerpt"}],
//               "tables": ["AppMetrics", ...],
//               "reads": [{"table", "column", "key"}],
//               "filters": [{"table", "column", "key", "values": [...]}]}}
// `reads` are the table columns the query refers to (with the key of a dynamic column's
// element, `Properties["status"]`); `filters` the `==` and `in` comparisons of such a read
// (through tostring() and friends) with string literals. `table` is null where the language
// service does not tie a column to one table (after a union).
//
// tests/infra/test_kql.py runs it; `node tools/kql_check.js < request.json` by hand.
"use strict";

const path = require("path");

const root = path.resolve(__dirname, "..");
const service = path.join(root, "node_modules", "@kusto", "language-service-next");
require(path.join(service, "bridge.js"));
require(path.join(service, "Kusto.Language.Bridge.js"));

/* global Kusto, Bridge */
const Symbols = Kusto.Language.Symbols;
const Syntax = Kusto.Language.Syntax;
const Kind = Syntax.SyntaxKind;
const CONVERSIONS = new Set(["tostring", "toint", "tolong", "toreal", "todouble", "tobool"]);

function globalsFor(tables) {
  const symbols = Object.entries(tables).map(([name, columns]) => {
    const schema = "(" + columns.map(([column, type]) => `['${column}']:${type}`).join(", ") + ")";
    return new Symbols.TableSymbol.$ctor7(name, schema, null);
  });
  const database = new Symbols.DatabaseSymbol.$ctor2("workspace", null, symbols);
  return Kusto.Language.GlobalState.Default.WithDatabase(database);
}

function stringLiteral(node) {
  while (node && (node.Kind === Kind.ParenthesizedExpression || node.Kind === Kind.BracketedExpression)) {
    node = node.Expression;
  }
  if (node && node.Kind === Kind.StringLiteralExpression) {
    return String(node.LiteralValue);
  }
  return null;
}

// The table column `node` stands for: a column, a dynamic column's element, or either through
// a conversion function. null for anything else.
function columnOf(node, globals) {
  if (!node) return null;
  switch (node.Kind) {
    case Kind.ParenthesizedExpression:
      return columnOf(node.Expression, globals);
    case Kind.NameReference: {
      const symbol = node.ReferencedSymbol;
      if (!(symbol instanceof Symbols.ColumnSymbol)) return null;
      const table = globals.GetTable(symbol);
      return { table: table ? table.Name : null, column: symbol.Name, key: null };
    }
    case Kind.ElementExpression: {
      const base = columnOf(node.Expression, globals);
      const key = stringLiteral(node.Selector);
      return base && key !== null && base.key === null ? { ...base, key } : null;
    }
    case Kind.FunctionCallExpression: {
      const args = Bridge.toArray(node.ArgumentList.Expressions);
      if (!CONVERSIONS.has(node.Name.SimpleName) || args.length !== 1) return null;
      return columnOf(args[0].Element, globals);
    }
    default:
      return null;
  }
}

function describe(text, globals) {
  const code = Kusto.Language.KustoCode.ParseAndAnalyze(text, globals);
  const diagnostics = Bridge.toArray(code.GetDiagnostics()).map((d) => ({
    severity: String(d.Severity),
    code: d.Code,
    message: d.Message,
    excerpt: text.substr(Math.max(0, d.Start - 20), d.Length + 40),
  }));
  const tables = new Set();
  const reads = [];
  const filters = [];
  Syntax.SyntaxElement.WalkNodes(code.Syntax, (node) => {
    if (node.Kind === Kind.NameReference && node.ReferencedSymbol instanceof Symbols.TableSymbol) {
      tables.add(node.ReferencedSymbol.Name);
    }
    if (node.Kind === Kind.NameReference || node.Kind === Kind.ElementExpression) {
      const read = columnOf(node, globals);
      if (read) reads.push(read);
    }
    if (node.Kind === Kind.EqualExpression) {
      const pairs = [[node.Left, node.Right], [node.Right, node.Left]];
      for (const [side, other] of pairs) {
        const read = columnOf(side, globals);
        const value = stringLiteral(other);
        if (read && value !== null) filters.push({ ...read, values: [value] });
      }
    }
    if (node.Kind === Kind.InExpression) {
      const read = columnOf(node.Left, globals);
      const values = Bridge.toArray(node.Right.Expressions).map((e) => stringLiteral(e.Element));
      if (read && values.length && values.every((v) => v !== null)) filters.push({ ...read, values });
    }
  });
  return { diagnostics, tables: [...tables].sort(), reads, filters };
}

function main(input) {
  const request = JSON.parse(input);
  const globals = globalsFor(request.tables);
  const answer = {};
  for (const [name, text] of Object.entries(request.queries)) {
    answer[name] = describe(text, globals);
  }
  process.stdout.write(JSON.stringify(answer));
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  input += chunk;
});
process.stdin.on("end", () => main(input));
