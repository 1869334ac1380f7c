"""The lists every runner and consumer shares, as code: case statuses, error kinds, reference
classes, exit codes.

The tool-run v2 schema's ``error.kind`` enum is generated from :data:`ERROR_KINDS`
(``tests/test_kinds.py`` keeps the two equal), so a kind is added here first, with the line
that says when it is used.
"""

from __future__ import annotations

from enum import IntEnum

#: A case's status.
OK, FAILED, UNSUPPORTED, UNAVAILABLE = "ok", "failed", "unsupported", "unavailable"
STATUSES = (OK, FAILED, UNSUPPORTED, UNAVAILABLE)

#: error.kind -> (the status it goes with, when it is used). One list for every runner.
ERROR_KINDS: dict[str, tuple[str, str]] = {
    # the tool or what it needs is not here (status unavailable): the message says how to provide it
    "binary-missing": (UNAVAILABLE, "the tool's binary was not found (no --tool-path, env var or cached build)"),
    "image-missing": (UNAVAILABLE, "the Docker image named by --image is not present"),
    "docker-missing": (UNAVAILABLE, "--image was given but the docker SDK or CLI is not installed"),
    "docker-unavailable": (UNAVAILABLE, "the Docker daemon cannot be reached"),
    "package-missing": (UNAVAILABLE, "a Python package the tool needs is not installed"),
    "checkout-missing": (UNAVAILABLE, "the tool's source checkout was not given or is incomplete"),
    "chakra-missing": (UNAVAILABLE, "Chakra (trace converter) is not installed"),
    "config-missing": (UNAVAILABLE, "a tool configuration file the case needs does not exist"),
    "gpus-missing": (UNAVAILABLE, "fewer GPUs than the case needs are present"),
    "onnxsim-missing": (UNAVAILABLE, "onnx-simplifier is not installed"),
    "profile-missing": (UNAVAILABLE, "the profiling data the tool's predictor needs is not present"),
    "predictor-missing": (UNAVAILABLE, "the trained predictor files are not present"),
    "weights-missing": (UNAVAILABLE, "the trained model weights are not present"),
    "rules-missing": (UNAVAILABLE, "the tool's rule files (e.g. fusion rules) are not present"),
    "tile-dataset-missing": (UNAVAILABLE, "the tool's tile dataset is not present"),
    "predictor-hash-mismatch": (UNAVAILABLE, "predictor files differ from their recorded sha256: refused before loading"),
    "rules-hash-mismatch": (UNAVAILABLE, "rule files differ from their recorded sha256: refused before loading"),
    "predictor-incompatible-sklearn": (UNAVAILABLE, "the predictor pickles need another scikit-learn version"),
    # the tool ran and broke (status failed)
    "tool-crashed": (FAILED, "the tool exited non-zero or raised"),
    "timeout": (FAILED, "the case ran past --timeout and its process group was killed"),
    "out-of-memory": (FAILED, "the tool was killed by the kernel's out-of-memory killer"),
    "killed-by-signal": (FAILED, "the tool was killed by a signal that was not our timeout"),
    "parse-failed": (FAILED, "the tool's output could not be parsed"),
    "invalid-value": (FAILED, "the tool's output held a value the metric cannot take (non-finite, negative, zero divisor)"),
    "incomplete": (FAILED, "a composed case lacks the result of a part (e.g. a model total missing a layer)"),
    "measurement-failed": (FAILED, "a measurement on hardware raised or gave no samples"),
    "no-mapping": (FAILED, "the mapper found no valid mapping"),
    "interrupted": (FAILED, "the run was interrupted before this case finished"),
    # the tool cannot express the case (status unsupported)
    "unsupported-algorithm": (UNSUPPORTED, "the tool has no implementation of this algorithm/collective"),
    "unsupported-case": (UNSUPPORTED, "the tool cannot express this case (the message says what is missing)"),
    "no-kernels": (UNSUPPORTED, "kernel detection found no kernels in the model"),
    "no-operators": (UNSUPPORTED, "the model holds no operator the tool models"),
    "remote-memory": (UNSUPPORTED, "the case needs a remote-memory model the tool lacks"),
    "memory-type": (UNSUPPORTED, "the case needs a memory type the tool lacks"),
}

#: How independent a D1 reference is of the tool scored against it: class -> when it applies.
#: A case declares a class other than ``independent`` in its ``independence`` field (tool-run 2.2,
#: :func:`mtap_schemas.toolrun.independence`): a prediction that used a measurement of the scored
#: hardware says ``calibrated-separately`` and what it used; a reference built from a tool's own
#: operators or labels says so and names the tools. The aggregate gives every prediction/measurement
#: pair one class (:func:`pair_class`), and the headline D1 table holds only :data:`HEADLINE_CLASSES`.
REFERENCE_CLASSES: dict[str, str] = {
    "independent": "the reference was taken without any input of the tool (our measurement; the tool saw only datasheet figures or its own training data)",
    "calibrated-separately": "the tool used a microbenchmark or profile of the scored hardware that is not the scored cases (the record says which)",
    "published-silicon": "a published measurement of real silicon, quoted with its citation",
    "shared-operators": "the reference is built from the tool's own operator set or schedule (e.g. a replay of the simulator's profiled kernels)",
    "tool-labels": "the reference is the tool authors' own measurements (their labels)",
}
#: the classes a headline D1 row may hold (and the least pairs such a row needs)
HEADLINE_CLASSES = ("independent", "calibrated-separately", "published-silicon")
HEADLINE_MIN_PAIRS = 5
#: classes a reference (measurement) declares; ``calibrated-separately`` is declared by the prediction
REFERENCE_SIDE_CLASSES = ("shared-operators", "tool-labels")


def pair_class(tool: str, prediction: dict | None, reference: dict | None, published: bool) -> tuple[str, str]:
    """(class, what) of one prediction/measurement pair from the two cases' ``independence`` fields.

    A reference built from this tool's operators or labels (its ``tools`` name the tool, or name
    none) decides first; then a published silicon figure; then a prediction calibrated on the scored
    hardware; otherwise the pair is independent."""
    if reference and reference["class"] in REFERENCE_SIDE_CLASSES and (not reference.get("tools") or tool in reference["tools"]):
        return reference["class"], reference["what"]
    if published:
        return "published-silicon", (reference or {}).get("what", "")
    if prediction and prediction["class"] == "calibrated-separately":
        return "calibrated-separately", prediction["what"]
    return "independent", ""


class Exit(IntEnum):
    """Exit codes, identical for every runner (documented in packages/README.md)."""

    #: document written: at least one ok case, or only honest unavailable/unsupported records
    OK = 0
    #: an unexpected error (with its traceback)
    UNEXPECTED = 1
    #: a known user error (one line, nothing written)
    USER_ERROR = 2
    #: document written, but every case failed
    ALL_FAILED = 3
    #: the new document had fewer ok cases than the one on disk: kept the old one, wrote the new beside it
    KEPT_EXISTING = 4
    #: interrupted by SIGINT/SIGTERM; finished cases are in the progress file for --resume
    INTERRUPTED = 130


def status_of_kind(kind: str) -> str:
    return ERROR_KINDS[kind][0]
