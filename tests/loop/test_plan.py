"""Table tests for the planner: which changes sync, rebuild, redeploy, reload, or mean nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from devloop import config
from devloop.files.ignore import PathRules
from devloop.loop.plan import Plan, plan, replan
from devloop.model.changes import Change, ChangeKind
from devloop.model.project import Project

CONFIG = """\
name: shop
ignore: ["scratch", "**/*.tmp"]
services:
  base:
    image: shop/base
    context: base
  web:
    image: shop/web
    context: web
    manifests: [templates/web.yaml.j2, templates/common.yaml.j2]
    requires: [base]
    sync:
      - {src: "app/**/*.py", dest: /app/app}
      - {src: "static/**", dest: /srv/static, then: restart}
      - {src: "*.cfg", dest: /etc/web}
      - {src: "docs/api/*.html", dest: /srv/api}
  worker:
    image: shop/worker
    context: web
    dockerfile: Dockerfile.worker
    manifests: [templates/worker.yaml.j2, templates/common.yaml.j2]
    requires: [base]
    sync:
      - {src: "app/**/*.py", dest: /srv, strip: ""}
  cron:
    image: shop/cron
    context: cron
    dockerfile: ../docker/cron.Dockerfile
    requires: [worker]
  other:
    image: shop/other
    context: other
"""

FILES = {
    "web/Dockerfile": "FROM scratch\n",
    "web/Dockerfile.worker": "FROM scratch\n",
    "web/.dockerignore": "docs\n*.md\n!README.md\nbuild/\n",
    "base/Dockerfile": "FROM scratch\n",
    "cron/main.sh": "",
    "docker/cron.Dockerfile": "FROM scratch\n",
    "other/Dockerfile": "FROM scratch\n",
    "templates/web.yaml.j2": "",
    "templates/worker.yaml.j2": "",
    "templates/common.yaml.j2": "",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("shop")
    (root / "devloop.yaml").write_text(CONFIG)
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return config.load(root)


def run(project: Project, selected: tuple[str, ...], changes: list[tuple[ChangeKind, str]]) -> Plan:
    batch = [Change(kind, project.root / rel) for kind, rel in changes]
    return plan(project, selected, batch, PathRules(project, selected))


def summary(p: Plan) -> set[str]:
    """One line per decision, e.g. 'web copy app/x.py -> /app/app/x.py' or 'web rebuild'."""
    out = {"reload"} if p.reload else set()
    for s in p.services:
        for sync in s.syncs:
            out |= {f"{s.name} copy {f.rel} -> {f.dest}" for f in sync.copy}
            out |= {f"{s.name} delete {f.rel} -> {f.dest}" for f in sync.delete}
        if s.rebuild:
            out.add(f"{s.name} rebuild")
        if s.redeploy:
            out.add(f"{s.name} redeploy")
    return out


WEB = ("web",)
ALL = ("web", "worker", "cron", "other")
ROWS: list[tuple[str, tuple[str, ...], list[tuple[ChangeKind, str]], set[str]]] = [
    # sync rules, destinations and strip
    (
        "py file under a sync rule",
        WEB,
        [("modified", "web/app/views.py")],
        {"web copy app/views.py -> /app/app/views.py"},
    ),
    (
        "nested py file keeps its sub-path",
        WEB,
        [("added", "web/app/a/b/m.py")],
        {"web copy app/a/b/m.py -> /app/app/a/b/m.py"},
    ),
    (
        "deleted synced file is deleted in the container",
        WEB,
        [("deleted", "web/app/old.py")],
        {"web delete app/old.py -> /app/app/old.py"},
    ),
    (
        "trailing ** takes every file below",
        WEB,
        [("added", "web/static/css/site.css")],
        {"web copy static/css/site.css -> /srv/static/css/site.css"},
    ),
    (
        "top-level * does not cross directories",
        WEB,
        [("modified", "web/conf/x.cfg")],
        {"web rebuild"},
    ),
    (
        "top-level * matches at the top",
        WEB,
        [("modified", "web/prod.cfg")],
        {"web copy prod.cfg -> /etc/web/prod.cfg"},
    ),
    (
        "a sync rule wins over .dockerignore",
        WEB,
        [("modified", "web/docs/api/index.html")],
        {"web copy docs/api/index.html -> /srv/api/index.html"},
    ),
    (
        "add and delete in one batch",
        WEB,
        [("added", "web/app/n.py"), ("deleted", "web/static/a.js")],
        {"web copy app/n.py -> /app/app/n.py", "web delete static/a.js -> /srv/static/a.js"},
    ),
    (
        "the last change to a path wins",
        WEB,
        [("added", "web/app/t.py"), ("deleted", "web/app/t.py")],
        {"web delete app/t.py -> /app/app/t.py"},
    ),
    # shared context: one file, several services
    (
        "shared context syncs both services",
        ("web", "worker"),
        [("modified", "web/app/m.py")],
        {"web copy app/m.py -> /app/app/m.py", "worker copy app/m.py -> /srv/app/m.py"},
    ),
    (
        "non-py file in app rebuilds both sharers",
        ("web", "worker"),
        [("modified", "web/app/data.json")],
        {"web rebuild", "worker rebuild"},
    ),
    (
        "strip '' keeps the whole path",
        ("worker",),
        [("modified", "web/app/x.py")],
        {"worker copy app/x.py -> /srv/app/x.py"},
    ),
    (
        "static file: web syncs, worker (no rule) rebuilds",
        ("web", "worker"),
        [("modified", "web/static/i.png")],
        {"web copy static/i.png -> /srv/static/i.png", "worker rebuild"},
    ),
    # rebuilds
    (
        "file outside the rules rebuilds",
        WEB,
        [("modified", "web/requirements.txt")],
        {"web rebuild"},
    ),
    (
        "deleting a file outside the rules rebuilds",
        WEB,
        [("deleted", "web/lib/util.c")],
        {"web rebuild"},
    ),
    ("Dockerfile change rebuilds", WEB, [("modified", "web/Dockerfile")], {"web rebuild"}),
    (
        "another service's Dockerfile is a plain context file",
        WEB,
        [("modified", "web/Dockerfile.worker")],
        {"web rebuild"},
    ),
    (
        "worker's own Dockerfile",
        ("worker",),
        [("modified", "web/Dockerfile.worker")],
        {"worker rebuild"},
    ),
    (".dockerignore change rebuilds", WEB, [("modified", "web/.dockerignore")], {"web rebuild"}),
    (
        "Dockerfile outside the context",
        ("cron",),
        [("modified", "docker/cron.Dockerfile")],
        {"cron rebuild"},
    ),
    (
        "rebuild supersedes syncs",
        WEB,
        [("modified", "web/app/v.py"), ("modified", "web/setup.sh")],
        {"web rebuild"},
    ),
    # .dockerignore
    ("dockerignored dir: ignored", WEB, [("modified", "web/docs/guide.txt")], set()),
    ("dockerignored glob: ignored", WEB, [("modified", "web/NOTES.md")], set()),
    ("! exception is a build input", WEB, [("modified", "web/README.md")], {"web rebuild"}),
    ("dockerignored dir with trailing slash", WEB, [("added", "web/build/out.o")], set()),
    (
        "always-ignored trees",
        WEB,
        [
            ("modified", "web/node_modules/x/i.js"),
            ("added", "web/.git/HEAD"),
            ("added", "web/app/__pycache__/v.cpython-311.pyc"),
        ],
        set(),
    ),
    # dependencies
    (
        "required service rebuild cascades to dependents",
        ALL,
        [("modified", "base/Dockerfile")],
        {"base rebuild", "web rebuild", "worker rebuild", "cron rebuild"},
    ),
    (
        "a dependency's context file cascades",
        WEB,
        [("added", "base/lib.sh")],
        {"base rebuild", "web rebuild"},
    ),
    (
        "cascade is transitive",
        ("cron",),
        [("modified", "web/Dockerfile.worker")],
        {"worker rebuild", "cron rebuild"},
    ),
    (
        "dependents outside the selection are left alone",
        ("worker",),
        [("modified", "base/Dockerfile")],
        {"base rebuild", "worker rebuild"},
    ),
    (
        "a sync in a dependent does not cascade",
        ("cron",),
        [("modified", "web/app/p.py")],
        {"worker copy app/p.py -> /srv/app/p.py"},
    ),
    # templates and devloop.yaml
    (
        "template change redeploys its service",
        WEB,
        [("modified", "templates/web.yaml.j2")],
        {"web redeploy"},
    ),
    (
        "shared template redeploys every user",
        ("web", "worker"),
        [("modified", "templates/common.yaml.j2")],
        {"web redeploy", "worker redeploy"},
    ),
    ("template of an unselected service", WEB, [("modified", "templates/worker.yaml.j2")], set()),
    ("devloop.yaml reloads", WEB, [("modified", "devloop.yaml")], {"reload"}),
    (
        "devloop.yaml plus a sync",
        WEB,
        [("modified", "devloop.yaml"), ("modified", "web/app/q.py")],
        {"reload", "web copy app/q.py -> /app/app/q.py"},
    ),
    (
        "deleted template still redeploys",
        WEB,
        [("deleted", "templates/web.yaml.j2")],
        {"web redeploy"},
    ),
    # everything else
    ("unselected service's context", WEB, [("modified", "other/main.go")], set()),
    ("file outside every context", WEB, [("added", "notes.txt")], set()),
    ("project ignore list (directory)", ("other",), [("modified", "scratch/x.py")], set()),
    ("project ignore list (glob anywhere)", WEB, [("added", "web/app/x.tmp")], set()),
    ("the context directory itself", WEB, [("modified", "web")], set()),
    ("empty batch", ALL, [], set()),
]


@pytest.mark.parametrize(
    ("selected", "changes", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_plan_table(
    project: Project,
    selected: tuple[str, ...],
    changes: list[tuple[ChangeKind, str]],
    expected: set[str],
) -> None:
    assert summary(run(project, selected, changes)) == expected


def test_rebuild_records_paths_and_superseded_syncs(project: Project) -> None:
    p = run(project, WEB, [("modified", "web/app/v.py"), ("modified", "web/setup.sh")])
    web = p.service("web")
    assert web is not None and web.rebuild is not None and web.syncs == ()
    assert web.rebuild.paths == ("setup.sh",)
    [sync] = web.rebuild.superseded
    assert [f.dest for f in sync.copy] == ["/app/app/v.py"]


def test_cascade_names_the_cause_and_keeps_dependency_order(project: Project) -> None:
    p = run(project, ALL, [("modified", "base/Dockerfile")])
    assert [s.name for s in p.services] == ["base", "web", "worker", "cron"]
    cron = p.service("cron")
    assert cron is not None and cron.rebuild is not None
    assert cron.rebuild.because_of == ("worker",) and cron.rebuild.paths == ()


def test_syncs_are_grouped_per_rule_with_sorted_files(project: Project) -> None:
    p = run(
        project,
        WEB,
        [("added", "web/app/z.py"), ("added", "web/app/a.py"), ("modified", "web/static/s.css")],
    )
    web = p.service("web")
    assert web is not None
    assert [(s.rule.src, [f.rel for f in s.copy]) for s in web.syncs] == [
        ("app/**/*.py", ["app/a.py", "app/z.py"]),
        ("static/**", ["static/s.css"]),
    ]
    assert web.syncs[1].rule.then == "restart"


def test_ignored_lists_what_means_nothing(project: Project) -> None:
    p = run(
        project,
        WEB,
        [("added", "notes.txt"), ("modified", "web/app/k.py"), ("added", "web/docs/d.txt")],
    )
    assert sorted(x.relative_to(project.root).as_posix() for x in p.ignored) == [
        "notes.txt",
        "web/docs/d.txt",
    ]
    assert bool(p)
    assert not run(project, WEB, [("added", "notes.txt")])


def test_redeploy_names_the_templates(project: Project) -> None:
    p = run(project, ("web", "worker"), [("modified", "templates/common.yaml.j2")])
    worker = p.service("worker")
    assert worker is not None and worker.redeploy is not None
    assert worker.redeploy.templates == (project.root / "templates/common.yaml.j2",)


def test_plan_does_no_io(project: Project, tmp_path: Path) -> None:
    """Paths that do not exist plan exactly like ones that do."""
    assert summary(run(project, WEB, [("modified", "web/app/ghost/never.py")])) == {
        "web copy app/ghost/never.py -> /app/app/ghost/never.py"
    }


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("values:\n  r: 1\n", "values:\n  r: 2\n"),
            {"base redeploy", "web redeploy", "worker redeploy"},
        ),
        (("    image: shop/web\n", "    image: shop/web2\n"), {"web rebuild"}),
        (('      - {src: "*.cfg", dest: /etc/web}\n', ""), {"web redeploy"}),
        (("values:\n  r: 1\n", "values:\n  r: 1\n"), set()),
    ],
    ids=["values", "image", "sync-rule", "nothing"],
)
def test_replan_after_config_change(
    tmp_path: Path, edit: tuple[str, str], expected: set[str]
) -> None:
    for rel, text in FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    base = CONFIG.replace("ignore:", "values:\n  r: 1\nignore:")
    (tmp_path / "devloop.yaml").write_text(base)
    old = config.load(tmp_path)
    (tmp_path / "devloop.yaml").write_text(base.replace(*edit))
    new = config.load(tmp_path)
    assert summary(replan(old, new, ("web", "worker"))) == expected


def _dir_plan(project: Project, selected: tuple[str, ...], changes: list[Change]) -> set[str]:
    return summary(plan(project, selected, changes, PathRules(project, selected)))


def test_a_deleted_folder_of_synced_files_is_deleted_in_the_container(project: Project) -> None:
    """A renamed or removed folder under a sync rule: the watcher reports the folder itself
    gone (and maybe its files); no rule matches the folder's own path, yet no image is needed."""
    web = project.root / "web"
    renamed = [
        Change("deleted", web / "app/pkg", directory=True),
        Change("added", web / "app/pkg2/m.py"),
        Change("added", web / "app/pkg2/sub/n.py"),
    ]
    assert _dir_plan(project, WEB, renamed) == {
        "web delete app/pkg -> /app/app/pkg",
        "web copy app/pkg2/m.py -> /app/app/pkg2/m.py",
        "web copy app/pkg2/sub/n.py -> /app/app/pkg2/sub/n.py",
    }
    removed = [Change("deleted", web / "static/img", directory=True)]
    assert _dir_plan(project, WEB, removed) == {"web delete static/img -> /srv/static/img"}
    # both sharers of the context delete it, each at its own destination
    assert _dir_plan(project, ("web", "worker"), renamed[:1]) == {
        "web delete app/pkg -> /app/app/pkg",
        "worker delete app/pkg -> /srv/app/pkg",
    }


def test_a_deleted_folder_no_sync_rule_reaches_still_rebuilds(project: Project) -> None:
    web = project.root / "web"
    assert _dir_plan(project, WEB, [Change("deleted", web / "lib", directory=True)]) == {
        "web rebuild"
    }
    # a file of the folder outside the rules (the inotify watcher reports them) rebuilds
    changes = [
        Change("deleted", web / "app/pkg", directory=True),
        Change("deleted", web / "app/pkg/data.json"),
    ]
    assert "web rebuild" in _dir_plan(project, WEB, changes)


def test_a_manifest_the_dockerfile_copies_rebuilds_and_redeploys(tmp_path: Path) -> None:
    """`context: .` with `COPY . .`: the manifest is an image input, its edit changes the tag
    `render` names, so dev must build that tag, not redeploy the old one."""
    from devloop.build.inputs import InputSet

    (tmp_path / "devloop.yaml").write_text(
        "name: s\nservices:\n  web:\n    image: s/web\n    manifests: [k8s/web.yaml]\n"
    )
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s/web.yaml").write_text("{}\n")
    project = config.load(tmp_path)
    edit = [Change("modified", tmp_path / "k8s/web.yaml")]
    rules = PathRules(project, WEB)
    copied = plan(project, WEB, edit, rules, {"web": InputSet((".",))})
    assert summary(copied) == {"web rebuild", "web redeploy"}
    assert copied.services[0].rebuild is not None
    assert copied.services[0].rebuild.paths == ("k8s/web.yaml",)
    not_copied = plan(project, WEB, edit, rules, {"web": InputSet(("app",))})
    assert summary(not_copied) == {"web redeploy"}


def test_rebuild_paths_and_sync_ignores_take_files_out_of_a_sync_glob(tmp_path: Path) -> None:
    """compose's `action: rebuild` on package.json inside a synced folder: a `rebuild:` glob of
    the service, or an `ignore:` glob of the rule (then the file counts as it would without the
    rule: an image input rebuilds)."""
    (tmp_path / "devloop.yaml").write_text(
        """\
name: s
services:
  web:
    image: s/web
    rebuild: [web/package.json]
    sync: [{src: "web/**", dest: /app, ignore: ["web/package-lock.json", "web/**/*.log"]}]
"""
    )
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY web /app\n")
    project = config.load(tmp_path)

    def decide(rel: str) -> set[str]:
        return summary(
            plan(project, WEB, [Change("modified", tmp_path / rel)], PathRules(project, WEB))
        )

    assert decide("web/src/main.js") == {"web copy web/src/main.js -> /app/src/main.js"}
    assert decide("web/package.json") == {"web rebuild"}
    assert decide("web/package-lock.json") == {"web rebuild"}
    assert decide("web/logs/x.log") == {"web rebuild"}
    gone = [Change("deleted", tmp_path / "web/src", directory=True)]
    assert summary(plan(project, WEB, gone, PathRules(project, WEB))) == {
        "web delete web/src -> /app/src"
    }
    ignored_dir = [Change("deleted", tmp_path / "web/package-lock.json", directory=True)]
    assert summary(plan(project, WEB, ignored_dir, PathRules(project, WEB))) == {"web rebuild"}
    rule = project.services["web"].sync[0]
    assert rule.ignore == ("web/package-lock.json", "web/**/*.log")
    assert project.services["web"].rebuild == ("web/package.json",)
