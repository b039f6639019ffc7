"""Sessions: ``nox`` runs lint, typecheck and the tests on every supported Python found.

``nox -s compat`` runs the suite against both aiobotocore lines (2.25.x, which the
current aioboto3 pins, and 3.x); ``nox -s demo`` runs ``dynascan demo``; ``nox -s bench``
runs the full benchmark (on demand: about 15 minutes), ``bench_smoke`` a tiny run of it.
"""

from __future__ import annotations

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests", "compat", "bench_smoke"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHONS = nox.project.python_versions(PYPROJECT)  # from the classifiers: 3.10 to 3.13


def _install_tests(session: nox.Session, *extra: str, package: str = ".") -> None:
    session.install(package, *nox.project.dependency_groups(PYPROJECT, "tests"), *extra)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    _install_tests(session, package=".[fast]")
    session.run("pytest", *session.posargs)


@nox.session
@nox.parametrize("aiobotocore", ["2.25", "3"])
def compat(session: nox.Session, aiobotocore: str) -> None:
    """The two aiobotocore lines users have: the one aioboto3 pins and the newest.

    Without the ``fast`` extra, so the stdlib JSON path is tested too.
    """
    _install_tests(session, f"aiobotocore=={aiobotocore}.*")
    session.run("python", "-c", "import aiobotocore; print('aiobotocore', aiobotocore.__version__)")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install(".[fast]", *nox.project.dependency_groups(PYPROJECT, "typecheck"))
    session.run("mypy", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The quick start: `dynascan demo` (a local model server, the seeds' web-log workloads)."""
    session.install(".[fast,server]")
    session.run("dynascan", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark: every Python scan client on one table; speed, client CPU per item, RSS.

    dynalite is installed by npm under benchmarks/.node on first use; results go to
    benchmarks/results/ (bench.md, bench.png, bench.json).
    """
    session.install(".[fast]", *nox.project.dependency_groups(PYPROJECT, "bench"))
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def bench_smoke(session: nox.Session) -> None:
    """CI's tiny run of the benchmark: 2,000 items on the model server; wrong counts fail it."""
    session.install(".[fast]", *nox.project.dependency_groups(PYPROJECT, "bench"))
    session.run("python", "benchmarks/run.py", "--smoke", *session.posargs)
    session.run("python", "benchmarks/arrow_batches.py", "--smoke")
