// Renders /openapi.json as a list of routes grouped by tag: method, path, summary, security,
// parameters, request body and answers, with schemas expanded from #/components/schemas.
// Every text from the document goes into the page through textContent, never as HTML.
"use strict";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function resolve(doc, schema) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return { name, schema: (doc.components.schemas || {})[name] || {} };
  }
  return { name: null, schema: schema || {} };
}

// A schema as indented text (depth-limited, so recursive schemas end).
function describe(doc, schema, depth) {
  const { name, schema: s } = resolve(doc, schema);
  const pad = "  ".repeat(depth);
  if (depth > 6) return pad + (name || "…");
  const alts = s.oneOf || s.anyOf || s.allOf;
  if (alts) {
    const word = s.allOf ? "all of" : "one of";
    return pad + (name ? name + ": " : "") + word + "\n" + alts.map((a) => describe(doc, a, depth + 1)).join("\n");
  }
  let type = Array.isArray(s.type) ? s.type.join(" | ") : s.type || (s.properties ? "object" : "any");
  if (type.includes("array") && s.items) {
    return pad + (name ? name + ": " : "") + "array of\n" + describe(doc, s.items, depth + 1);
  }
  let out = pad + (name ? name + ": " : "") + type;
  if (s.enum) out += " (" + s.enum.join(", ") + ")";
  if (s.description) out += " — " + s.description;
  const required = new Set(s.required || []);
  for (const [key, prop] of Object.entries(s.properties || {})) {
    const inner = describe(doc, prop, depth + 1).trimStart();
    const mark = required.has(key) ? "" : "?";
    out += "\n" + "  ".repeat(depth + 1) + key + mark + ": " + inner;
  }
  return out;
}

function content(doc, body) {
  const c = (body && body.content) || {};
  return Object.entries(c).map(([type, media]) => type + "\n" + describe(doc, media.schema, 1)).join("\n");
}

function operation(doc, path, method, op) {
  const section = el("section", null, "op");
  const head = el("h3");
  head.append(el("span", method.toUpperCase(), "method " + method), el("code", path));
  section.append(head);
  if (op.summary) section.append(el("p", op.summary));
  if (op.description && op.description !== op.summary) section.append(el("p", op.description));
  const sec = (op.security || []).flatMap((s) => Object.keys(s));
  if (sec.length) section.append(el("p", "Authorization: bearer " + sec.join(" or "), "auth"));
  for (const p of op.parameters || []) {
    section.append(el("p", p.in + " parameter " + p.name + (p.required ? "" : " (optional)") +
      (p.description ? " — " + p.description : ""), "param"));
  }
  if (op.requestBody) {
    section.append(el("h4", "Request body"), el("pre", content(doc, op.requestBody)));
  }
  section.append(el("h4", "Answers"));
  for (const [status, r] of Object.entries(op.responses || {})) {
    section.append(el("p", status + " " + (r.description || ""), "status"));
    const text = content(doc, r);
    if (text) section.append(el("pre", text));
  }
  return section;
}

async function main() {
  const main = document.getElementById("routes");
  let doc;
  try {
    const r = await fetch("/openapi.json");
    doc = await r.json();
  } catch (e) {
    main.replaceChildren(el("p", "Cannot read /openapi.json: " + e));
    return;
  }
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("description").textContent = doc.info.description || "";
  const byTag = new Map((doc.tags || []).map((t) => [t.name, []]));
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(doc, path, method, op));
    }
  }
  main.replaceChildren();
  for (const [tag, ops] of byTag) {
    if (!ops.length) continue;
    const t = (doc.tags || []).find((x) => x.name === tag);
    main.append(el("h2", tag), el("p", t ? t.description : ""), ...ops);
  }
}

main();
