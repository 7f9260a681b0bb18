"""Every container image the cluster path needs, built on this machine.

No registry is assumed. Base images are Debian root filesystems made with mmdebstrap
from the host's own apt sources (so no mirror name is written anywhere) and imported
into Docker; the project's image installs wheels built on the host; the kind node image
carries every image kubeadm needs, preloaded into its containerd. Each image is keyed by
what it is made from — a base image's tag by its suite, packages and mmdebstrap options,
the others' ``SOURCE_LABEL`` by a digest of their files and binaries — so a second run
finds it and does nothing, and any change builds it again.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devstack import apt, locks, native, settings
from devstack.docker_engine import EngineUnavailable, docker, image_exists

Progress = Callable[[str], None]

CONTAINERS = Path(__file__).parent / "containers"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Image repository kubeadm is told to use (kubeadmConfigPatches); nothing is ever pulled from it.
NODE_IMAGE_REPOSITORY = "srs.local"
CONTAINERD_CONFIG = CONTAINERS / "node" / "files" / "etc" / "containerd" / "config.toml"

#: Debian root filesystems (minbase variant): name -> packages.
_ROOTFS_PACKAGES: dict[str, list[str]] = {
    "srs-base-python": ["python3", "python3-venv", "ca-certificates"],
    "srs-base-jre": ["openjdk-17-jre-headless", "bash"],
    "srs-base-nft": ["nftables"],
    # llama-server links llama.cpp statically; OpenMP and the C++ runtime come from Debian.
    "srs-base-llm": ["libgomp1", "libstdc++6"],
    "srs-base-kind-node": [
        "systemd", "systemd-sysv", "dbus", "containerd", "runc", "containernetworking-plugins",
        "iptables", "nftables", "conntrack", "iproute2", "ethtool", "util-linux", "mount", "kmod",
        "libseccomp2", "pigz", "bash", "ca-certificates", "procps", "socat", "findutils",
    ],
}  # fmt: skip


#: How ensure_rootfs runs mmdebstrap (besides the packages, the suite and the apt sources).
_MMDEBSTRAP_OPTIONS = (
    "--quiet", "--variant=minbase",
    # Documentation and translations are dead weight in an image.
    "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
    # Java's postinst registers man pages with update-alternatives: the folder must exist.
    '--setup-hook=mkdir -p "$1/usr/share/man/man1"',
)  # fmt: skip


def _rootfs_tag(name: str, packages: list[str]) -> str:
    # Tagged by what it is built from (suite, packages, mmdebstrap's options): a change builds anew.
    recipe = hashlib.sha256(repr((settings.DEBIAN_SUITE, packages, _MMDEBSTRAP_OPTIONS)).encode()).hexdigest()[:8]
    return f"{name}:{settings.DEBIAN_SUITE}-{recipe}"


#: Debian root filesystems: image tag -> packages.
ROOTFS: dict[str, list[str]] = {_rootfs_tag(n, p): p for n, p in _ROOTFS_PACKAGES.items()}
PYTHON_BASE, JRE_BASE, NFT_BASE, LLM_BASE, NODE_BASE = ROOTFS

# Rebuilt whenever what goes into them changes (their SOURCE_LABEL digest), whatever the tag.
NODE_IMAGE = f"srs-kind-node:{settings.KUBERNETES_VERSION}"
KAFKA_IMAGE = f"srs-kafka:{settings.KAFKA_VERSION}"
LLM_SERVER_IMAGE = f"srs-llm-server:{settings.LLAMA_CPP_PYTHON_VERSION}"
LLM_MODEL_IMAGE = f"srs-llm-model:{settings.LLM_MODEL_PACKAGE}-{settings.LLM_MODEL_VERSION}"
#: KEDA's binaries (devstack/keda.py) -> their images, named as upstream's (keda,
#: keda-metrics-apiserver, keda-admission-webhooks).
KEDA_IMAGES = {
    "keda": f"srs-keda:{settings.KEDA_VERSION}",
    "keda-adapter": f"srs-keda-metrics-apiserver:{settings.KEDA_VERSION}",
    "keda-admission-webhooks": f"srs-keda-admission-webhooks:{settings.KEDA_VERSION}",
}


def _host_apt_sources() -> list[str]:
    """The host's apt source files: mmdebstrap pastes them into the new root filesystem."""
    apt = Path("/etc/apt")
    found = [apt / "sources.list"] if (apt / "sources.list").is_file() else []
    found += sorted(p for p in (apt / "sources.list.d").glob("*") if p.suffix in (".list", ".sources"))
    if not found:
        raise RuntimeError("no apt sources in /etc/apt: mmdebstrap needs a Debian mirror the host uses")
    return [str(p) for p in found]


def ensure_rootfs(tag: str, progress: Progress) -> None:
    """Build a Debian minbase root filesystem with mmdebstrap and import it (first run only)."""
    if image_exists(tag):
        return
    if shutil.which("mmdebstrap") is None:
        apt.install(["mmdebstrap"], progress, EngineUnavailable)
    with locks.exclusive(locks.MACHINE_LOCKS, "srs-" + tag.replace(":", "-"), f"base image {tag}", progress):
        if not image_exists(tag):
            _debootstrap(tag, progress)


def _debootstrap(tag: str, progress: Progress) -> None:
    packages = ROOTFS[tag]
    progress(f"building base image {tag} from Debian packages with mmdebstrap (first run only, ~1-2 min)")
    with tempfile.TemporaryDirectory(prefix="srs-rootfs.") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        subprocess.run(
            [
                "mmdebstrap", *_MMDEBSTRAP_OPTIONS,
                f"--include={','.join(packages)}",
                settings.DEBIAN_SUITE, str(tar), *_host_apt_sources(),
            ],
            check=True,
        )  # fmt: skip
        docker("import", str(tar), tag)


#: Label holding the digest of what an image was built from; a different digest rebuilds it.
SOURCE_LABEL = "dev.srs.source-digest"


def source_digest(*roots: Path, extra: str = "") -> str:
    """A digest of every file under ``roots`` (path and content) plus ``extra``."""
    h = hashlib.sha256(extra.encode())
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc":
                continue
            h.update(str(f.relative_to(PROJECT_ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def source_label(tag: str) -> str:
    """The digest ``tag`` was built from (its ``SOURCE_LABEL``), "" when it has none."""
    return docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{SOURCE_LABEL}"}}}}', tag).strip()


def image_is_current(tag: str, digest: str) -> bool:
    """True when ``tag`` exists and was built from ``digest``."""
    return image_exists(tag) and source_label(tag) == digest


def ensure_rootfs_all(tags: Sequence[str], progress: Progress) -> None:
    """Build the missing base images side by side: mmdebstrap waits mostly on downloads and
    dpkg, so four of them together take about as long as the slowest (154 s vs ~8 min here)."""
    missing = [tag for tag in tags if not image_exists(tag)]
    if not missing:
        return
    if shutil.which("mmdebstrap") is None:
        apt.install(["mmdebstrap"], progress, EngineUnavailable)  # once, before the threads: apt holds a lock
    with ThreadPoolExecutor(max_workers=len(missing)) as pool:
        for future in [pool.submit(ensure_rootfs, tag, progress) for tag in missing]:
            future.result()


def _build(context: Path, tag: str, *build_args: str, dockerfile: Path | None = None, digest: str = "") -> None:
    args = ["build", "--quiet", "--tag", tag]
    if digest:
        args += ["--label", f"{SOURCE_LABEL}={digest}"]
    for arg in build_args:
        args += ["--build-arg", arg]
    if dockerfile is not None:
        args += ["--file", str(dockerfile)]
    docker(*args, str(context))


# --- the project's image ---------------------------------------------------------------


def build_wheels(progress: Progress) -> Path:
    """srs and exactly the locked versions of its dependencies (``requirements.lock``, hashes
    checked) as wheels in build/wheels: the image build installs only these."""
    out = PROJECT_ROOT / "build" / "wheels"
    progress(f"building wheels of srs and its locked dependencies into {out.relative_to(PROJECT_ROOT)}")
    # A fresh folder, so the image finds no other version (pip's own cache keeps this quick).
    shutil.rmtree(out, ignore_errors=True)
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--wheel-dir", str(out)]
    for args in (
        ["--require-hashes", "--no-deps", "-r", str(PROJECT_ROOT / "requirements.lock")],
        # srs itself, built by the venv's locked setuptools (no unpinned build environment).
        ["--no-deps", "--no-build-isolation", str(PROJECT_ROOT)],
    ):
        done = subprocess.run([*pip, *args], capture_output=True, text=True)
        if done.returncode != 0:
            # setuptools' build chatter is only worth reading when the build failed.
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            done.check_returncode()
    # The classifier's compiled step: the wheel `make install` built (cached by its sources).
    shutil.copy2(native.wheel(), out)
    return out


#: What the srs image is built from (besides its base image).
SRS_SOURCES = (
    "pyproject.toml",
    "Dockerfile",
    "srs",
    "devstack",
    "srs_contracts",
    "agent_runtime",
    "srs_training",
    "operator",
    "events",
    "gitops",
    "native/Cargo.toml",
    "native/Cargo.lock",
    "native/pyproject.toml",
    "native/src",
    "native/srs_native",
)


def srs_source_digest(base: str | None) -> str:
    return source_digest(*(PROJECT_ROOT / s for s in SRS_SOURCES), extra=base or PYTHON_BASE)


def ensure_srs_image(tag: str, base: str | None, progress: Progress) -> str:
    """The srs image, rebuilt only when the sources it is made from changed."""
    if image_is_current(tag, srs_source_digest(base)):
        return tag
    return build_srs_image(tag, base, progress)


def build_srs_image(tag: str, base: str | None, progress: Progress) -> str:
    """Build the project's Dockerfile; ``base`` None means the Debian base built here."""
    digest = srs_source_digest(base)
    if base is None:
        ensure_rootfs(PYTHON_BASE, progress)
        base = PYTHON_BASE
    build_wheels(progress)
    t0 = time.monotonic()
    progress(f"building image {tag} (BASE_IMAGE={base})")
    _build(PROJECT_ROOT, tag, f"BASE_IMAGE={base}", digest=digest)
    size = int(docker("image", "inspect", "--format", "{{.Size}}", tag).strip())
    progress(f"image {tag}: {size / 1e6:.0f} MB, built in {time.monotonic() - t0:.0f}s")
    return tag


def build_kafka_image(libs: Path, progress: Progress, jre_base: str | None = None) -> str:
    """Kafka (the devstack's jars) on a JRE: the broker of the kind cluster. ``jre_base``
    None means Debian's JRE built here; any image with Java 17+ and bash will do."""
    # The jars' folder is named by the versions and the POM that resolved them.
    digest = source_digest(CONTAINERS / "kafka", extra=f"{jre_base or JRE_BASE}:{libs.parent.name}")
    if image_is_current(KAFKA_IMAGE, digest):
        return KAFKA_IMAGE
    if jre_base is None:
        ensure_rootfs(JRE_BASE, progress)
        jre_base = JRE_BASE
    progress(f"building image {KAFKA_IMAGE} (JRE_BASE={jre_base})")
    with tempfile.TemporaryDirectory(prefix="srs-kafka-image.") as tmp:
        ctx = Path(tmp)
        shutil.copytree(libs, ctx / "libs")
        for name in ("Dockerfile", "start-kafka"):
            shutil.copy2(CONTAINERS / "kafka" / name, ctx / name)
        _build(ctx, KAFKA_IMAGE, f"JRE_BASE={jre_base}", digest=digest)
    return KAFKA_IMAGE


def build_llm_images(server: Path, model: Path, chat_template: Path, progress: Progress) -> tuple[str, str]:
    """The model server's two images: ``llama-server`` with its chat template, and the model
    file on its own (the pod copies it into a volume). Each is keyed by what it is made of:
    the server's cache folder names its build key, the model's folder its pinned digest."""
    recipe = CONTAINERS / "llm"
    built = []
    for tag, files, dockerfile in (
        (LLM_SERVER_IMAGE, {"llama-server": server, "plain-text.jinja": chat_template}, recipe / "Dockerfile"),
        (LLM_MODEL_IMAGE, {"model.gguf": model}, recipe / "model.Dockerfile"),
    ):
        # Files of the project by content; cached ones by their folder's name (it carries their key).
        ours = [p for p in files.values() if p.is_relative_to(PROJECT_ROOT)]
        cached = ",".join(f"{name}={p.parent.name}" for name, p in files.items() if not p.is_relative_to(PROJECT_ROOT))
        digest = source_digest(dockerfile, *ours, extra=f"{LLM_BASE}:{cached}")
        if image_is_current(tag, digest):
            built.append(tag)
            continue
        ensure_rootfs(LLM_BASE, progress)
        progress(f"building image {tag}")
        with tempfile.TemporaryDirectory(prefix="srs-llm-image.") as tmp:
            ctx = Path(tmp)
            for name, path in files.items():
                # A hard link where the cache and /tmp share a file system: the model is 253 MB.
                try:
                    (ctx / name).hardlink_to(path)
                except OSError:
                    shutil.copy2(path, ctx / name)
            _build(ctx, tag, f"LLM_BASE={LLM_BASE}", dockerfile=dockerfile, digest=digest)
        built.append(tag)
    return built[0], built[1]


def build_keda_images(bins: Path, progress: Progress) -> dict[str, str]:
    """KEDA's three images (binary name -> image), each one static binary of ``bins`` on the
    layout of upstream's distroless base (``containers/keda``). Keyed by the recipe, the base
    and the binaries' cache folder, whose name carries KEDA's version, toolchain and recipe."""
    recipe = CONTAINERS / "keda"
    for binary, tag in KEDA_IMAGES.items():
        digest = source_digest(recipe, extra=f"{PYTHON_BASE}:{bins.name}/{binary}")
        if image_is_current(tag, digest):
            continue
        ensure_rootfs(PYTHON_BASE, progress)
        progress(f"building image {tag}")
        with tempfile.TemporaryDirectory(prefix="srs-keda-image.") as tmp:
            ctx = Path(tmp)
            for name in ("Dockerfile", "passwd", "group"):
                shutil.copy2(recipe / name, ctx / name)
            try:  # a hard link where the cache and /tmp share a file system: up to 176 MB
                (ctx / binary).hardlink_to(bins / binary)
            except OSError:
                shutil.copy2(bins / binary, ctx / binary)
            _build(ctx, tag, f"CERTS_BASE={PYTHON_BASE}", f"BINARY={binary}", digest=digest)
    return dict(KEDA_IMAGES)


# --- the kind node image ---------------------------------------------------------------


def sandbox_image() -> str:
    """The pause image containerd starts every pod with: named once, in the node's config.toml."""
    match = re.search(r'^\s*sandbox_image\s*=\s*"([^"]+)"', CONTAINERD_CONFIG.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no sandbox_image in {CONTAINERD_CONFIG}")
    return match.group(1)


def node_component_images() -> dict[str, tuple[str, str]]:
    """Image name -> (binary, path in the image) of every one-binary image kubeadm runs."""
    k = settings.KUBERNETES_VERSION
    repo = NODE_IMAGE_REPOSITORY
    return {
        f"{repo}/kube-apiserver:{k}": ("kube-apiserver", "/usr/local/bin/kube-apiserver"),
        f"{repo}/kube-controller-manager:{k}": ("kube-controller-manager", "/usr/local/bin/kube-controller-manager"),
        f"{repo}/kube-scheduler:{k}": ("kube-scheduler", "/usr/local/bin/kube-scheduler"),
        f"{repo}/etcd:{settings.ETCD_VERSION}": ("etcd", "/usr/local/bin/etcd"),
        f"{repo}/coredns:{settings.COREDNS_VERSION}": ("coredns", "/coredns"),
        sandbox_image(): ("pause", "/pause"),
    }


def kube_proxy_image() -> str:
    return f"{NODE_IMAGE_REPOSITORY}/kube-proxy:{settings.KUBERNETES_VERSION}"


def _one_binary_image(binary: Path, entry: str, tag: str) -> None:
    """An image holding one static binary at ``entry`` (the upstream images' layout)."""
    with tempfile.TemporaryDirectory(prefix="srs-one-binary.") as tmp:
        tar = Path(tmp) / "image.tar"
        with tarfile.open(tar, "w") as archive:
            info = archive.gettarinfo(str(binary), arcname=entry.lstrip("/"))
            info.mode, info.uid, info.gid, info.uname, info.gname = 0o755, 0, 0, "root", "root"
            with open(binary, "rb") as data:
                archive.addfile(info, data)
        docker(
            "import",
            "--change", f'ENTRYPOINT ["{entry}"]',
            "--change", "ENV PATH=/usr/local/bin:/",
            str(tar), tag,
        )  # fmt: skip


def _build_component_images(control_plane_bins: Path, node_bins: Path, progress: Progress) -> list[str]:
    images = []
    for image, (binary, entry) in node_component_images().items():
        source = control_plane_bins / binary
        if not source.is_file():
            source = node_bins / binary
        _one_binary_image(source, entry, image)
        images.append(image)
    ensure_rootfs(NFT_BASE, progress)
    with tempfile.TemporaryDirectory(prefix="srs-kube-proxy.") as tmp:
        shutil.copy2(node_bins / "kube-proxy", Path(tmp) / "kube-proxy")
        _build(
            Path(tmp), kube_proxy_image(), f"PROXY_BASE={NFT_BASE}", dockerfile=CONTAINERS / "kube-proxy" / "Dockerfile"
        )
    images.append(kube_proxy_image())
    return images


def ensure_node_image(control_plane_bins: Path, node_bins: Path, progress: Progress) -> str:
    """The kind node image for the devstack's Kubernetes version, every image preloaded;
    rebuilt when its files or any binary in it changed."""
    binaries = [node_bins / b for b in ("kubelet", "kubeadm", "kube-proxy", "srs-runc", "pause", "coredns")]
    binaries += [control_plane_bins / b for b in ("kubectl", "kube-apiserver", "kube-controller-manager", "etcd")]
    # Keyed by content: a binary rebuilt from an edited source (srs-runc) rebuilds the node.
    stamp = ",".join(f"{b.name}:{hashlib.sha256(b.read_bytes()).hexdigest()}" for b in binaries)
    digest = source_digest(CONTAINERS / "node", Path(__file__), extra=stamp)
    if image_is_current(NODE_IMAGE, digest):
        return NODE_IMAGE
    t0 = time.monotonic()
    ensure_rootfs(NODE_BASE, progress)
    progress(f"building kind node image {NODE_IMAGE} (first run only)")
    unloaded = f"{NODE_IMAGE}-unloaded"
    with tempfile.TemporaryDirectory(prefix="srs-node.") as tmp:
        ctx = Path(tmp)
        shutil.copytree(CONTAINERS / "node" / "files", ctx / "files")
        shutil.copy2(CONTAINERS / "node" / "Dockerfile", ctx / "Dockerfile")
        (ctx / "bin").mkdir()
        for binary in ("kubelet", "kubeadm", "srs-runc"):
            shutil.copy2(node_bins / binary, ctx / "bin" / binary)
        shutil.copy2(control_plane_bins / "kubectl", ctx / "bin" / "kubectl")
        # kind reads /kind/version to pick the kubeadm config it writes.
        _build(ctx, unloaded, f"NODE_BASE={NODE_BASE}", f"KUBERNETES_VERSION={settings.KUBERNETES_VERSION}")

        images = _build_component_images(control_plane_bins, node_bins, progress)
        archive = ctx / "images.tar"
        docker("save", "--output", str(archive), *images)
        progress(f"preloading {len(images)} images into the node's containerd")
        _preload(unloaded, archive, NODE_IMAGE, digest)
    docker("image", "rm", unloaded, check=False)
    progress(f"kind node image {NODE_IMAGE} built in {time.monotonic() - t0:.0f}s")
    return NODE_IMAGE


def _preload(unloaded: str, archive: Path, tag: str, digest: str) -> None:
    """Import ``archive`` into the containerd of a node container and commit the result."""
    name = f"srs-node-build-{int(time.time())}"
    docker("run", "--detach", "--init", "--name", name, "--privileged", "--entrypoint", "sleep", unloaded, "infinity")
    try:
        docker("cp", str(archive), f"{name}:/images.tar")
        docker("exec", name, "bash", "-c", "nohup containerd > /var/log/containerd-build.log 2>&1 &")
        docker(
            "exec", name, "bash", "-c",
            "for i in $(seq 50); do ctr version >/dev/null 2>&1 && break; sleep 0.2; done; "
            "ctr --namespace=k8s.io images import --all-platforms --no-unpack /images.tar >/dev/null "
            "&& rm /images.tar /var/log/containerd-build.log",
        )  # fmt: skip
        docker("exec", name, "bash", "-c", "pkill containerd; while pgrep -x containerd >/dev/null; do sleep 0.1; done")
        docker(
            "commit",
            "--change", 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
            "--change", 'CMD []',
            "--change", f"LABEL {SOURCE_LABEL}={digest}",
            name, tag,
        )  # fmt: skip
    finally:
        docker("rm", "--force", "--volumes", name, check=False)
