#!/usr/bin/env python3
"""Extract the LOINC and RxNorm codes used by Synthea modules into the published file layouts.

Usage: synthea_codes.py MODULES_DIR OUT_DIR

Walks MODULES_DIR/**/*.json (Synthea disease modules, Apache-2.0) and collects every code object
{"system": "LOINC"|"RxNorm", "code": ..., "display": ...}. Writes

  OUT_DIR/loinc/Loinc.csv        LOINC table layout (quoted CSV, the columns our loader reads);
  OUT_DIR/rxnorm/RXNCONSO.RRF    RxNorm RRF layout (18 '|'-terminated fields).

These are SAMPLES converted to the published layouts, not LOINC or RxNorm releases: the LOINC axes
(COMPONENT, PROPERTY, ...) are unknown and left empty, LONG_COMMON_NAME is Synthea's display text;
RxNorm term types are guessed from the name (SCD/SBD when it has a strength or dose form, packs
GPCK/BPCK, else IN) and RXAUI values are synthetic. Standard library only.
"""

import csv
import json
import re
import sys
from pathlib import Path

LOINC_COLUMNS = [
    "LOINC_NUM", "COMPONENT", "PROPERTY", "TIME_ASPCT", "SYSTEM", "SCALE_TYP",
    "METHOD_TYP", "CLASS", "LONG_COMMON_NAME", "SHORTNAME", "STATUS",
]
LOINC_NUM = re.compile(r"^\d{1,7}-\d$")
STRENGTH = re.compile(
    r"\b\d+(\.\d+)?\s*(MG|MCG|ML|UNT|MEQ|MG/ML|MCG/ML|%|HR|ACTUAT)\b"
    r"|\b(Oral|Injection|Tablet|Capsule|Solution|Suspension|Inhal|Topical|Patch|Spray)\b",
    re.IGNORECASE,
)


def walk(node, found):
    """Collect code objects anywhere in a parsed module."""
    if isinstance(node, dict):
        system = node.get("system")
        if system in ("LOINC", "RxNorm") and "code" in node:
            code = str(node["code"]).strip()
            display = str(node.get("display", "")).strip()
            if code and display:
                found[system].setdefault(code, display)
        for value in node.values():
            walk(value, found)
    elif isinstance(node, list):
        for value in node:
            walk(value, found)


def rxnorm_tty(name):
    """Guess the RxNorm term type of a drug name."""
    if name.startswith("{"):
        return "BPCK" if "[" in name else "GPCK"
    if STRENGTH.search(name):
        return "SBD" if re.search(r"\[[^\]]+\]\s*$", name) else "SCD"
    return "IN"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    modules, out = Path(sys.argv[1]), Path(sys.argv[2])
    found = {"LOINC": {}, "RxNorm": {}}
    files = sorted(modules.rglob("*.json"))
    if not files:
        sys.exit(f"no Synthea module JSON under {modules}")
    for path in files:
        with open(path, encoding="utf-8") as f:
            walk(json.load(f), found)

    (out / "loinc").mkdir(parents=True, exist_ok=True)
    loinc_path = out / "loinc" / "Loinc.csv"
    with open(loinc_path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        w.writerow(LOINC_COLUMNS)
        n = 0
        for code, name in sorted(found["LOINC"].items()):
            if not LOINC_NUM.match(code):
                continue
            w.writerow([code, "", "", "", "", "", "", "", name, "", "ACTIVE"])
            n += 1
    print(f"  {loinc_path}: {n} LOINC codes")

    (out / "rxnorm").mkdir(parents=True, exist_ok=True)
    rx_path = out / "rxnorm" / "RXNCONSO.RRF"
    with open(rx_path, "w", encoding="utf-8", newline="") as f:
        n = 0
        for i, (code, name) in enumerate(sorted(found["RxNorm"].items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0)):
            if not code.isdigit() or "|" in name:
                continue
            # RXCUI|LAT|TS|LUI|STT|SUI|ISPREF|RXAUI|SAUI|SCUI|SDUI|SAB|TTY|CODE|STR|SRL|SUPPRESS|CVF|
            fields = [code, "ENG", "P", "", "PF", "", "Y", str(90000000 + i), "", "", "",
                      "RXNORM", rxnorm_tty(name), code, name, "0", "N", ""]
            f.write("|".join(fields) + "|\n")
            n += 1
    print(f"  {rx_path}: {n} RxNorm concepts")


if __name__ == "__main__":
    main()
