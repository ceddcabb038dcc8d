#!/usr/bin/env python3
"""Checks terraform/ without a cloud account or the terraform binary:

1. every .tf file parses (python-hcl2);
2. every module's and example's README lists exactly its variables (`## Inputs`) and outputs
   (`## Outputs`), and each has a description;
3. the three-regions example declares a variable for every key of its terraform.tfvars.json (which a
   Rust test keeps equal to `tern deploy render deploy/regions/example`), with the region fields the
   rendering writes;
4. checkov reports no failed check (a skip must be written, with its reason, in the resource).

Usage: python3 terraform/check.py   (scripts/setup installs python-hcl2 and checkov in a venv)
"""

import glob
import json
import os
import re
import subprocess
import sys

import hcl2

HERE = os.path.dirname(os.path.abspath(__file__))
problems = []


def blocks(parsed, kind):
    """name → body of each `variable` / `output` block."""
    found = {}
    for block in parsed.get(kind, []):
        for name, body in block.items():
            found[name.strip('"')] = body
    return found


def readme_names(text, section):
    """Backticked names in the first column of the table under `## <section>`."""
    m = re.search(rf"^## {section}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not m:
        return None
    return {row.group(1) for row in re.finditer(r"^\|\s*`([^`]+)`\s*\|", m.group(1), re.M)}


def check_dir(d):
    variables, outputs = {}, {}
    for f in sorted(glob.glob(os.path.join(d, "*.tf"))):
        try:
            with open(f) as fh:
                parsed = hcl2.load(fh)
        except Exception as e:  # noqa: BLE001 - any parse failure is the finding
            problems.append(f"{f}: does not parse: {e}")
            continue
        variables.update(blocks(parsed, "variable"))
        outputs.update(blocks(parsed, "output"))
    rel = os.path.relpath(d, HERE)
    for kind, found in (("variable", variables), ("output", outputs)):
        for name, body in found.items():
            if not body.get("description"):
                problems.append(f"{rel}: {kind} `{name}` has no description")
    readme = os.path.join(d, "README.md")
    if not os.path.exists(readme):
        problems.append(f"{rel}: no README.md")
        return variables
    with open(readme) as fh:
        text = fh.read()
    for section, found in (("Inputs", variables), ("Outputs", outputs)):
        listed = readme_names(text, section)
        if listed is None:
            problems.append(f"{rel}/README.md: no `## {section}` section")
            continue
        for name in sorted(set(found) - listed):
            problems.append(f"{rel}/README.md: `{name}` missing from {section}")
        for name in sorted(listed - set(found)):
            problems.append(f"{rel}/README.md: {section} lists `{name}`, which the module does not have")
    return variables


def check_example(d, variables):
    with open(os.path.join(d, "terraform.tfvars.json")) as fh:
        tfvars = json.load(fh)
    rel = os.path.relpath(d, HERE)
    for key in tfvars:
        if key not in variables:
            problems.append(f"{rel}: terraform.tfvars.json sets `{key}`, which no variable declares")
    region_type = str(variables.get("regions", {}).get("type", ""))
    some_region = next(iter(tfvars.get("regions", {}).values()), {})
    for field in some_region:
        if field not in region_type:
            problems.append(f"{rel}: variable `regions` has no field `{field}` the rendering writes")


def checkov():
    exe = os.environ.get("CHECKOV", "checkov")
    out = subprocess.run([exe, "-d", HERE, "--framework", "terraform", "--quiet", "--compact", "-o", "json"],
                         capture_output=True, text=True)
    try:
        reports = json.loads(out.stdout)
    except json.JSONDecodeError:
        problems.append(f"checkov did not run: {out.stderr.strip()[-500:]}")
        return
    for report in reports if isinstance(reports, list) else [reports]:
        summary = report.get("summary", {})
        print(f"checkov: {summary.get('passed', 0)} passed, {summary.get('failed', 0)} failed, "
              f"{summary.get('skipped', 0)} skipped")
        for failed in report.get("results", {}).get("failed_checks", []):
            problems.append(f"checkov {failed['check_id']} ({failed['check_name']}): {failed['resource']} "
                            f"in {failed['file_path']}")


def main():
    dirs = sorted(glob.glob(os.path.join(HERE, "modules", "*")) + glob.glob(os.path.join(HERE, "examples", "*")))
    if not dirs:
        problems.append("no modules or examples")
    for d in dirs:
        variables = check_dir(d)
        if os.path.exists(os.path.join(d, "terraform.tfvars.json")):
            check_example(d, variables)
    checkov()
    for p in problems:
        print(p)
    print(f"terraform: {len(dirs)} modules and examples, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
