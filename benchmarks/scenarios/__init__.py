"""The scenarios, by name. Each module has ``comparisons(smoke) -> contextmanager`` that
starts the scenario's servers and yields its comparisons while they run, and the jobs
(``raw_*``, ``asyncrepo_*``) that the worker processes run."""

SCENARIOS = (
    "csv",
    "s3",
    "github",
    "jira",
    "federation",
    "jenkins",
    "pypi",
    "elastic",
    "google",
    "slack",
    "sync",
    "cli",
)
MODULES = {
    "csv": "benchmarks.scenarios.csv_file",
    "s3": "benchmarks.scenarios.s3",
    "github": "benchmarks.scenarios.github",
    "jira": "benchmarks.scenarios.jira",
    "federation": "benchmarks.scenarios.federation",
    "jenkins": "benchmarks.scenarios.jenkins",
    "pypi": "benchmarks.scenarios.pypi",
    "elastic": "benchmarks.scenarios.elastic",
    "google": "benchmarks.scenarios.google",
    "slack": "benchmarks.scenarios.slack",
    "sync": "benchmarks.scenarios.sync",
    "cli": "benchmarks.scenarios.cli",
}
