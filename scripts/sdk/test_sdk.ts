// Exercise a TypeScript client generated from openapi.yaml (openapi-typescript types +
// openapi-fetch) against a live server: ingest a fixture, poll the job, search, normalize,
// score relatedness. Run by scripts/sdk.sh after type-checking against the generated types.
import createClient from "openapi-fetch";
import { readFileSync } from "node:fs";
import type { paths } from "./ontovec.d.ts";

const url = process.env.ONTOVEC_URL!;
const token = process.env.ONTOVEC_TOKEN!;
const fixture = process.env.FIXTURE!;

function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`check failed: ${what}`);
}

const api = createClient<paths>({ baseUrl: url });

// Ingest: multipart, bearer token. Without the token the server refuses. The body is typed by
// the generated schema; the serializer turns it into form parts with the file's bytes.
type IngestBody = paths["/v1/ingest"]["post"]["requestBody"]["content"]["multipart/form-data"];
const body: IngestBody = { format: "obo", release: "ts-sdk", system: "HPOTS", file: ["hpo-sample.obo"] };
const form = (b: IngestBody) => {
  const fd = new FormData();
  fd.append("format", b.format);
  fd.append("release", b.release);
  if (b.system) fd.append("system", b.system);
  for (const name of b.file) fd.append("file", new Blob([readFileSync(fixture)]), name);
  return fd;
};
const denied = await api.POST("/v1/ingest", { body, bodySerializer: form });
check(denied.response.status === 401, `ingest without token is 401 (got ${denied.response.status})`);
check(denied.error?.error.code === "unauthorized", "401 carries the error shape");

const accepted = await api.POST("/v1/ingest", {
  body,
  bodySerializer: form,
  headers: { Authorization: `Bearer ${token}` },
});
check(accepted.response.status === 202 && accepted.data, `ingest accepted (got ${accepted.response.status})`);
const jobId = accepted.data.job_id;

let state = "";
for (let i = 0; i < 600; i++) {
  const job = await api.GET("/v1/jobs/{job_id}", { params: { path: { job_id: jobId } } });
  check(job.data, "job status");
  state = job.data.state;
  if (state === "succeeded" || state === "failed") {
    check(state === "succeeded", `job succeeded: ${JSON.stringify(job.data.error)}`);
    break;
  }
  await new Promise((r) => setTimeout(r, 200));
}
check(state === "succeeded", `job finished (last state ${state})`);

const sources = await api.GET("/v1/sources");
check(sources.data?.sources.some((s) => s.system === "HPOTS" && s.release === "ts-sdk"), "the release is listed");

const concept = await api.GET("/v1/systems/{system}/concepts/{code}", {
  params: { path: { system: "HPOTS", code: "HP:0001250" } },
});
check(concept.data?.preferred_term === "Seizure", `concept lookup (${concept.data?.preferred_term})`);

const crosswalk = await api.GET("/v1/systems/{system}/concepts/{code}/mappings", {
  params: { path: { system: "ICD10CM", code: "E11.9" }, query: { target: "PHECODE" } },
});
check(crosswalk.data?.mappings.some((m) => m.system === "PHECODE"), "ICD-10-CM -> PheCODE crosswalk");

for (const mode of ["lexical", "vector", "hybrid"] as const) {
  const found = await api.POST("/v1/search", {
    body: { query: "epileptic fits", k: 5, mode, systems: ["HPOTS"] },
  });
  check(found.data, `search ${mode}: ${JSON.stringify(found.error)}`);
  check(found.data.results.length > 0, `search ${mode} finds something`);
  check(found.data.results.every((r) => r.system === "HPOTS"), `search ${mode} honours the filter`);
}
const seizure = await api.POST("/v1/search", { body: { query: "seizure", k: 3, systems: ["HPOTS"] } });
check(seizure.data?.results[0]?.code === "HP:0001250", `top hit for "seizure" (${seizure.data?.results[0]?.code})`);

const norm = await api.POST("/v1/normalize", {
  body: { mentions: ["seizures", "fits"], k: 3, systems: ["HPOTS"] },
});
check(norm.data?.results.length === 2, "one result per mention");
check(norm.data.results[0]?.candidates[0]?.code === "HP:0001250", "normalize 'seizures'");

const rel = await api.POST("/v1/relatedness", {
  body: {
    pairs: [
      { a: { text: "seizure" }, b: { system: "HPOTS", code: "HP:0001250" } },
      { a: { text: "seizure" }, b: { text: "abnormality of the hand" } },
    ],
  },
});
check(rel.data?.score_kind === "cosine" && rel.data.scores.length === 2, "relatedness shape");
const [close, far] = rel.data.scores as [number, number];
check(close > far, `related pair scores higher (${close} vs ${far})`);

const bad = await api.POST("/v1/search", { body: { query: "x", k: 0 } as never });
check(bad.response.status === 400 && bad.error?.error.code === "invalid_request", "bad input is a 400 in the error shape");
console.log(`typescript SDK: ingest job ${jobId}, search/normalize/relatedness ok (related ${close.toFixed(3)} > ${far.toFixed(3)})`);
