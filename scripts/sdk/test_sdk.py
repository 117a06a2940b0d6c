"""Exercise a Python client generated from openapi.yaml (openapi-python-client) against a live
server: ingest a fixture, poll the job, search, normalize, score relatedness. Run by
scripts/sdk.sh, which generates and installs the `ontovec_client` package first."""

import os
import time

from ontovec_client import AuthenticatedClient, Client
from ontovec_client.api.ontologies import concept, ingest, job, mappings, sources
from ontovec_client.api.search import normalize, relatedness, search
from ontovec_client.models import (
    ConceptSide,
    ErrorBody,
    IngestForm,
    IngestFormFormat,
    Mode,
    NormalizeRequest,
    Pair,
    RelatednessRequest,
    SearchRequest,
    TextSide,
)
from ontovec_client.types import File

URL = os.environ["ONTOVEC_URL"]
TOKEN = os.environ["ONTOVEC_TOKEN"]
FIXTURE = os.environ["FIXTURE"]


def check(cond, what):
    if not cond:
        raise SystemExit(f"check failed: {what}")


def form():
    with open(FIXTURE, "rb") as f:
        data = f.read()
    import io

    return IngestForm(
        format_=IngestFormFormat.OBO,
        release="py-sdk",
        system="HPOPY",
        file=[File(payload=io.BytesIO(data), file_name="hpo-sample.obo")],
    )


anon = Client(base_url=URL, raise_on_unexpected_status=True)
authed = AuthenticatedClient(base_url=URL, token=TOKEN, raise_on_unexpected_status=True)

# Writes need the token: the generated client maps the 401 to the error model.
denied = ingest.sync_detailed(client=anon, body=form())
check(denied.status_code == 401, f"ingest without token is 401 ({denied.status_code})")
check(isinstance(denied.parsed, ErrorBody) and denied.parsed.error.code == "unauthorized", "401 error shape")

created = ingest.sync(client=authed, body=form())
check(created is not None and not isinstance(created, ErrorBody), f"ingest accepted: {created}")
job_id = created.job_id

state = None
for _ in range(600):
    st = job.sync(job_id=job_id, client=anon)
    state = st.state.value
    if state in ("succeeded", "failed"):
        check(state == "succeeded", f"job succeeded: {st.error}")
        break
    time.sleep(0.2)
check(state == "succeeded", f"job finished (last state {state})")

srcs = sources.sync(client=anon)
check(any(s.system == "HPOPY" and s.release == "py-sdk" for s in srcs.sources), "the release is listed")
c = concept.sync(system="HPOPY", code="HP:0001250", client=anon)
check(c.preferred_term == "Seizure", f"concept lookup ({c.preferred_term})")
m = mappings.sync(system="ICD10CM", code="E11.9", target="PHECODE", client=anon)
check(any(x.system == "PHECODE" for x in m.mappings), "ICD-10-CM -> PheCODE crosswalk")

for mode in (Mode.LEXICAL, Mode.VECTOR, Mode.HYBRID):
    r = search.sync(client=anon, body=SearchRequest(query="epileptic fits", k=5, mode=mode, systems=["HPOPY"]))
    check(not isinstance(r, ErrorBody), f"search {mode}: {r}")
    check(len(r.results) > 0, f"search {mode} finds something")
    check(all(x.system == "HPOPY" for x in r.results), f"search {mode} honours the filter")
top = search.sync(client=anon, body=SearchRequest(query="seizure", k=3, systems=["HPOPY"]))
check(top.results[0].code == "HP:0001250", f"top hit for 'seizure' ({top.results[0].code})")

n = normalize.sync(client=anon, body=NormalizeRequest(mentions=["seizures", "fits"], k=3, systems=["HPOPY"]))
check(len(n.results) == 2, "one result per mention")
check(n.results[0].candidates[0].code == "HP:0001250", "normalize 'seizures'")

rel = relatedness.sync(
    client=anon,
    body=RelatednessRequest(
        pairs=[
            Pair(a=TextSide(text="seizure"), b=ConceptSide(system="HPOPY", code="HP:0001250")),
            Pair(a=TextSide(text="seizure"), b=TextSide(text="abnormality of the hand")),
        ]
    ),
)
check(rel.score_kind == "cosine" and len(rel.scores) == 2, "relatedness shape")
close, far = rel.scores
check(close > far, f"related pair scores higher ({close} vs {far})")

bad = search.sync_detailed(client=anon, body=SearchRequest(query="x", k=0))
check(bad.status_code == 400 and bad.parsed.error.code == "invalid_request", "bad input is a 400 in the error shape")
print(f"python SDK: ingest job {job_id}, search/normalize/relatedness ok (related {close:.3f} > {far:.3f})")
