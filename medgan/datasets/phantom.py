"""Procedural CT phantoms in Hounsfield units: heads and chest slices, with lesions.

``make_phantom`` draws one anatomy-like axial slice from a seed: a *head* (scalp, a
two-table skull with diploe, grey/white brain, subarachnoid CSF, lateral and third
ventricles, falx) or a *torso* at heart level (subcutaneous fat, muscle wall, ribs,
sternum, lungs with vessels, heart in pericardial fat, aortae, vertebra with spinal
canal). Sizes, shapes, HU values, rotation and position vary with the seed; everything
is drawn in normalised coordinates, so a seed gives the same anatomy at any size.

Edges are anti-aliased by rendering at 2-4x and averaging blocks (partial-volume
effect, like a real scanner), and an optional smooth random texture of a few HU keeps
tissues from being flat. Lesions (hypo/hyper-dense blobs in the brain, nodules in the
lungs) come with their mask and the lesion-free ``clean`` image, so anomaly detection
has exact ground truth. Images follow the radiological display: anterior up, patient
right on the image left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from medgan.data.imageset import ImageSet
from medgan.errors import MedganError

KINDS = ("head", "torso")
TISSUES = {
    "head": ["air", "soft tissue", "bone", "brain", "csf"],
    "torso": ["air", "fat", "soft tissue", "lung", "bone", "blood"],
}
AIR_HU = -1000.0


@dataclass
class Phantom:
    """One phantom slice.

    Attributes:
        image: ``(H, W)`` float32 HU, with lesions.
        clean: ``(H, W)`` float32 HU, the same slice without lesions.
        tissue: ``(H, W)`` uint8 label map indexing ``tissue_names`` (dominant tissue per pixel).
        lesion_mask: ``(H, W)`` uint8, 1 wherever a lesion touches the pixel (exactly
            the pixels where ``image`` differs from ``clean``).
        tissue_names: name of each ``tissue`` value.
        kind: ``"head"`` or ``"torso"``.
        lesions: number of lesions drawn.
    """

    image: np.ndarray
    clean: np.ndarray
    tissue: np.ndarray
    lesion_mask: np.ndarray
    tissue_names: list[str] = field(default_factory=list)
    kind: str = "head"
    lesions: int = 0


# --------------------------------------------------------------------------- geometry
class _Canvas:
    """A supersampled grid in normalised coordinates: x right, y down, both in [-1, 1]."""

    def __init__(self, size: int, factor: int, angle: float, shift: tuple[float, float]):
        n = size * factor
        c = (np.arange(n, dtype=np.float32) + 0.5) / n * 2.0 - 1.0
        y, x = np.meshgrid(c, c, indexing="ij")
        # The anatomy is drawn in its own frame; rotating the grid rotates the patient.
        cos, sin = np.cos(angle), np.sin(angle)
        x, y = x - shift[0], y - shift[1]
        self.x, self.y = cos * x + sin * y, -sin * x + cos * y
        self.size, self.factor, self.angle, self.shift = size, factor, angle, shift

    def ratio(self, cx: float, cy: float, ax: float, ay: float, angle: float = 0.0,
              wobble: np.ndarray | None = None) -> np.ndarray:
        """Normalised radius of a (wobbly) ellipse over the whole canvas: <= 1 inside.

        ``wobble`` is ``(K, 2)`` amplitudes/phases of harmonics 2..K+1 of the radius,
        which turns an ellipse into an organic outline. Concentric layers threshold one
        ratio field at ``1 - shrink`` instead of recomputing it.
        """
        dx, dy = self.x - cx, self.y - cy
        cos, sin = np.cos(angle), np.sin(angle)
        u, v = (cos * dx + sin * dy) / ax, (-sin * dx + cos * dy) / ay
        rho = np.sqrt(u * u + v * v)
        if wobble is None:
            return rho
        phi = np.arctan2(v, u)
        return rho / (1.0 + sum(a * np.cos((k + 2) * phi + p) for k, (a, p) in enumerate(wobble)))

    def blob(self, cx: float, cy: float, ax: float, ay: float, angle: float = 0.0,
             wobble: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask of a (wobbly) ellipse, evaluated only in its bounding window."""
        reach = max(ax, ay) * (1.0 + (0.0 if wobble is None else float(np.abs(wobble[:, 0]).sum())))
        # Pixel position of the centre: undo the patient rotation / shift of the grid.
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        gx, gy = cos * cx - sin * cy + self.shift[0], sin * cx + cos * cy + self.shift[1]
        n = self.x.shape[0]
        half = reach / 2 * n + 2
        (r0, r1), (c0, c1) = ((int(max(0, np.floor((g + 1) / 2 * n - half))),
                               int(min(n, np.ceil((g + 1) / 2 * n + half)))) for g in (gy, gx))
        out = np.zeros(self.x.shape, dtype=bool)
        if r0 >= r1 or c0 >= c1:
            return out
        window = (slice(r0, r1), slice(c0, c1))
        sub = _Canvas.__new__(_Canvas)
        sub.x, sub.y = self.x[window], self.y[window]
        out[window] = sub.ratio(cx, cy, ax, ay, angle, wobble) <= 1.0
        return out

    def down(self, hi: np.ndarray) -> np.ndarray:
        """Average ``factor x factor`` blocks: the anti-aliased (partial-volume) image."""
        s, f = self.size, self.factor
        return hi.reshape(s, f, s, f).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def _wobble(rng: np.random.Generator, amount: float, harmonics: int = 4) -> np.ndarray:
    """Random radius harmonics, weaker at higher orders so outlines stay smooth."""
    amp = rng.uniform(0, amount, harmonics) / np.arange(1, harmonics + 1)
    return np.stack([amp, rng.uniform(0, 2 * np.pi, harmonics)], axis=1)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Unit-variance smooth noise: a ``cells x cells`` random grid, blurred and upsampled.

    Drawn on a fixed coarse grid, so the field (like the anatomy) does not depend on size.
    """
    coarse = ndimage.gaussian_filter(rng.standard_normal((cells, cells)), 1.0, mode="wrap")
    coarse /= coarse.std() + 1e-8
    zoom = (shape[0] / cells, shape[1] / cells)
    return ndimage.zoom(coarse, zoom, order=3, mode="grid-wrap", grid_mode=True).astype(np.float32)


# --------------------------------------------------------------------------- anatomy
def _head(cv: _Canvas, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Head anatomy at canvas resolution: (HU, tissue labels, organ masks for lesions)."""
    hu = np.full(cv.x.shape, AIR_HU, np.float32)
    lab = np.zeros(cv.x.shape, np.uint8)
    scale = rng.uniform(0.82, 0.95)
    ax, ay = scale * rng.uniform(0.74, 0.82), scale * rng.uniform(0.92, 1.0)  # taller than wide
    outline = cv.ratio(0, 0, ax, ay, wobble=_wobble(rng, 0.05))
    scalp, skull = rng.uniform(0.04, 0.07), rng.uniform(0.07, 0.10)

    def layer(shrink: float) -> np.ndarray:  # concentric layers share one outline
        return outline <= 1.0 - shrink

    head = layer(0.0)
    hu[head], lab[head] = rng.uniform(20, 45), 1  # scalp
    bone = layer(scalp)
    hu[bone], lab[bone] = rng.uniform(1100, 1500), 2  # outer and inner tables
    diploe = layer(scalp + skull * 0.3) & ~layer(scalp + skull * 0.7)
    hu[diploe] = rng.uniform(450, 750)  # spongy bone between the tables
    inner = layer(scalp + skull)
    hu[inner], lab[inner] = rng.uniform(0, 10), 4  # subarachnoid CSF
    brain = layer(scalp + skull + 0.015)
    grey, white = rng.uniform(34, 42), rng.uniform(24, 31)
    hu[brain], lab[brain] = grey, 3
    hu[layer(scalp + skull + 0.015 + rng.uniform(0.05, 0.09))] = white  # cortex ribbon outside

    # Falx cerebri: a thin dense midline sheet, front and back of the brain.
    falx = (np.abs(cv.x) < 0.006) & brain & (np.abs(cv.y) > 0.25 * ay)
    hu[falx] = rng.uniform(45, 70)

    # Ventricles: two frontal horns diverging forward plus a slit third ventricle.
    csf = rng.uniform(0, 10)
    v = rng.uniform(0.7, 1.4)  # ventricle size (age / atrophy)
    spread, tilt, cy = rng.uniform(0.08, 0.12), rng.uniform(0.05, 0.25), rng.uniform(-0.1, 0.02)
    vent = np.zeros_like(brain)
    for side in (-1, 1):
        vent |= cv.blob(side * spread * v, cy, 0.06 * v, 0.2 * v, angle=-side * tilt, wobble=_wobble(rng, 0.2))
    vent |= cv.blob(0, cy + 0.22 * v, 0.012 * v, 0.07 * v)
    vent &= brain
    hu[vent], lab[vent] = csf, 4
    return hu, lab, {"organ": brain & ~vent & ~falx, "mode": "relative"}


def _torso(cv: _Canvas, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Chest at heart level (see module doc): (HU, tissue labels, organ masks for lesions)."""
    hu = np.full(cv.x.shape, AIR_HU, np.float32)
    lab = np.zeros(cv.x.shape, np.uint8)
    u = rng.uniform
    ax, ay = u(0.84, 0.95), u(0.55, 0.68)  # wider than deep
    cy0 = u(-0.04, 0.04)
    outline = cv.ratio(0, cy0, ax, ay, wobble=_wobble(rng, 0.04))
    fat_t, wall_t = u(0.04, 0.12), u(0.07, 0.11)

    def layer(shrink: float) -> np.ndarray:  # concentric layers share one outline
        return outline <= 1.0 - shrink

    fat, muscle, soft, bone, lung, blood = 1, 2, 2, 4, 3, 5
    body = layer(0.0)
    hu[body], lab[body] = u(-110, -80), fat
    wall = layer(fat_t)
    hu[wall], lab[wall] = u(35, 55), muscle
    cavity = layer(fat_t + wall_t)
    hu[cavity], lab[cavity] = u(-100, -70), fat  # mediastinal fat fills what organs leave

    # Ribs: small dense ovals along the chest wall, skipping the sternum and spine.
    r_rib = 1.0 - fat_t - wall_t * 0.5
    for theta in np.linspace(0, 2 * np.pi, 14, endpoint=False) + u(0, 0.2):
        if abs(np.sin(theta)) > 0.93:  # front (sternum) and back (spine)
            continue
        cx, cy = ax * r_rib * np.cos(theta), cy0 + ay * r_rib * np.sin(theta)
        rib = cv.blob(cx, cy, 0.035, 0.022, angle=theta + np.pi / 2)
        hu[rib], lab[rib] = u(500, 800), bone

    # Lungs: the right (image left) one larger; the heart bites into the left one.
    lungs = np.zeros_like(body)
    lw, lh = u(0.36, 0.42) * ax / 0.9, u(0.50, 0.58) * ay / 0.62
    for side, grow in ((-1, 1.05), (1, 0.95)):
        lungs |= cv.blob(side * u(0.44, 0.48) * ax / 0.9, cy0 + u(0.0, 0.05), lw * grow, lh,
                         angle=side * u(0.0, 0.2), wobble=_wobble(rng, 0.08))
    lungs &= cavity
    hu[lungs], lab[lungs] = u(-880, -820), lung

    # Heart in pericardial fat, shifted to the patient's left (image right) and forward.
    hx, hy = u(0.06, 0.14), cy0 + u(-0.18, -0.08)
    hw, hh = u(0.20, 0.25), u(0.16, 0.21)
    tilt = u(-0.7, -0.4)
    peri = cv.blob(hx, hy, hw + 0.03, hh + 0.03, angle=tilt)
    hu[peri], lab[peri] = u(-100, -70), fat
    heart = cv.blob(hx, hy, hw, hh, angle=tilt, wobble=_wobble(rng, 0.06))
    hu[heart], lab[heart] = u(38, 50), blood

    # Great vessels: descending aorta left of the spine, ascending aorta in front.
    spine_y = cy0 + ay * u(0.55, 0.62)
    for cx, cy, r in ((u(0.08, 0.13), spine_y - u(0.13, 0.17), u(0.045, 0.06)),
                      (u(-0.02, 0.04), hy - hh - u(0.0, 0.03), u(0.05, 0.065))):
        vessel = cv.blob(cx, cy, r, r)
        hu[vessel], lab[vessel] = u(40, 55), blood
    oesophagus = cv.blob(u(-0.03, 0.03), spine_y - 0.13, 0.03, 0.025)
    hu[oesophagus & ~lungs], lab[oesophagus & ~lungs] = u(25, 45), soft

    # Vertebra: cortical rim, cancellous body, spinal canal, posterior elements.
    rv = u(0.08, 0.1)
    vert = cv.blob(0, spine_y, rv, rv * 0.9)
    hu[vert], lab[vert] = u(800, 1100), bone
    cancellous = cv.blob(0, spine_y, rv * 0.8, rv * 0.72)
    hu[cancellous] = u(200, 350)
    posterior = cv.blob(0, spine_y + rv * 1.6, rv * 0.95, rv * 0.55) | cv.blob(0, spine_y + rv * 2.5, 0.02, rv * 0.6)
    posterior &= body
    hu[posterior], lab[posterior] = u(600, 900), bone
    canal = cv.blob(0, spine_y + rv * 1.35, rv * 0.42, rv * 0.38)
    hu[canal], lab[canal] = u(10, 30), soft

    # Sternum at the front.
    sternum = cv.blob(0, cy0 - ay * (1 - fat_t - wall_t * 0.5), 0.07, 0.03)
    hu[sternum], lab[sternum] = u(400, 650), bone

    # Pulmonary vessels: small soft-tissue dots, denser near the hila.
    n_vessels = rng.integers(25, 45)
    for _ in range(n_vessels):
        side = rng.choice((-1, 1))
        cx, cy = side * u(0.15, 0.7) * ax, cy0 + u(-0.4, 0.35) * ay
        r = u(0.006, 0.02) * (1.3 - abs(cx) / ax)
        dot = cv.blob(cx, cy, r, r * u(0.6, 1.6), angle=u(0, np.pi)) & lungs
        hu[dot] = u(-150, 40)
    return hu, lab, {"organ": lungs & (hu < -500), "mode": "absolute"}


# --------------------------------------------------------------------------- lesions
def _lesions(cv: _Canvas, rng: np.random.Generator, hu: np.ndarray, organ: dict, count: int) -> np.ndarray:
    """The HU change lesions make at canvas resolution (0 outside them)."""
    effect = np.zeros_like(hu)
    where = np.argwhere(organ["organ"])
    if len(where) == 0:
        return effect
    for _ in range(count):
        iy, ix = where[rng.integers(len(where))]
        # Centre at a random organ pixel, in the rotated frame the blobs are drawn in.
        cx, cy = float(cv.x[iy, ix]), float(cv.y[iy, ix])
        if organ["mode"] == "relative":  # brain: hypo- or hyper-dense by 20..60 HU
            r = rng.uniform(0.04, 0.12)
            delta = rng.choice((-1.0, 1.0)) * rng.uniform(20, 60)
        else:  # lung nodule: soft-tissue density
            r = rng.uniform(0.02, 0.07)
            delta = None
        blob = cv.blob(cx, cy, r * rng.uniform(0.7, 1.0), r * rng.uniform(0.7, 1.0),
                       angle=rng.uniform(0, np.pi), wobble=_wobble(rng, 0.25)) & organ["organ"]
        if delta is None:
            effect[blob] = rng.uniform(-40, 50) - hu[blob]
        else:
            effect[blob] = delta
    return effect


def _seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (bool, float)) or int(seed) < 0:
        raise MedganError(f"phantom seed must be a non-negative integer, got {seed!r}")
    return np.random.SeedSequence(int(seed))


def _child(ss: np.random.SeedSequence, key: int) -> np.random.Generator:
    """A generator for sub-stream ``key`` of ``ss`` (without mutating ``ss``, unlike spawn)."""
    child = np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (key,))
    return np.random.Generator(np.random.PCG64(child))


def make_phantom(size: int = 64, seed: int | np.random.SeedSequence = 0, kind: str = "head",
                 texture: bool = True, lesions: int = 0, lesion_seed: int | None = None) -> Phantom:
    """Draw one CT phantom slice.

    Args:
        size: image side in pixels (16..2048; the anatomy does not depend on it).
        seed: anatomy seed (an int or a ``SeedSequence``); the same seed gives the same phantom.
        kind: ``"head"`` or ``"torso"``.
        texture: add a smooth random texture of a few HU (tens in the lungs).
        lesions: number of lesions (brain: hypo/hyper-dense blobs; torso: lung nodules).
        lesion_seed: seed of the lesions' placement; by default derived from ``seed``, so
            the same anatomy can carry different lesions.

    Returns:
        A :class:`Phantom` with ``image``, ``clean``, ``tissue`` and ``lesion_mask``.

    Raises:
        MedganError: unknown ``kind`` or out-of-range ``size`` / ``lesions``.
    """
    if kind not in KINDS:
        raise MedganError(f"unknown phantom kind {kind!r}", hint=f"use one of {', '.join(KINDS)}")
    if not 16 <= int(size) <= 2048:
        raise MedganError(f"phantom size must be 16..2048 pixels, got {size}")
    if lesions < 0:
        raise MedganError(f"phantom lesions must be >= 0, got {lesions}")
    size = int(size)
    ss = _seed_sequence(seed)
    rng = _child(ss, 0)
    # Supersampling factor: at least a 256-pixel canvas for small images, 2x for big ones.
    factor = int(np.clip(np.ceil(256 / size), 2, 4))

    angle = rng.uniform(-0.2, 0.2) if kind == "head" else rng.uniform(-0.08, 0.08)
    shift = (float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.04, 0.04)))
    cv = _Canvas(size, factor, angle, shift)
    hu, lab, organ = (_head if kind == "head" else _torso)(cv, rng)

    if texture:
        tex_rng = _child(ss, 2)
        field = 0.7 * _smooth_field(tex_rng, hu.shape, 24) + 0.3 * _smooth_field(tex_rng, hu.shape, 64)
        # A few HU in soft tissue; lung parenchyma is much more heterogeneous; none in air.
        amp = np.select([hu <= -950, hu < -500, hu > 300], [0.0, 25.0, 30.0], default=3.0).astype(np.float32)
        hu = hu + amp * field

    clean = cv.down(hu)
    tissue = _down_labels(cv, lab, len(TISSUES[kind]))
    lesion_mask = np.zeros((size, size), np.uint8)
    image = clean.copy()
    if lesions:
        lrng = np.random.Generator(np.random.PCG64(_seed_sequence(lesion_seed))) if lesion_seed is not None else _child(ss, 1)
        effect = _lesions(cv, lrng, hu, organ, lesions)
        cover = cv.down((effect != 0).astype(np.float32))
        lesion_mask = (cover > 0).astype(np.uint8)
        # Added (not re-rendered) so that pixels no lesion touches stay bit-identical.
        image = np.where(lesion_mask > 0, clean + cv.down(effect), clean).astype(np.float32)
    return Phantom(image=image, clean=clean, tissue=tissue, lesion_mask=lesion_mask,
                   tissue_names=list(TISSUES[kind]), kind=kind, lesions=int(lesions))


def _down_labels(cv: _Canvas, lab: np.ndarray, n: int) -> np.ndarray:
    """The dominant label of each block (ties go to the lower label)."""
    s, f = cv.size, cv.factor
    blocks = lab.reshape(s, f, s, f)
    counts = np.stack([(blocks == k).sum(axis=(1, 3)) for k in range(n)])
    return np.argmax(counts, axis=0).astype(np.uint8)


def phantom_set(n: int = 256, size: int = 64, seed: int = 0, kind: str = "head",
                texture: bool = True, lesion_fraction: float = 0.0) -> ImageSet:
    """A set of ``n`` phantoms, each its own patient.

    Image ``i`` depends only on ``seed`` and ``i`` (a child ``SeedSequence``), so it is
    the same whatever ``n``. A fraction ``lesion_fraction`` of images (drawn per image)
    carry 1-3 lesions.

    Returns:
        An :class:`ImageSet` in HU, labels 0 normal / 1 lesion, masks = lesion masks,
        groups = ``arange(n)``.
    """
    if n < 1:
        raise MedganError(f"phantom set size must be >= 1, got {n}")
    if not 0.0 <= lesion_fraction <= 1.0:
        raise MedganError(f"lesion_fraction must be in [0, 1], got {lesion_fraction}")
    children = _seed_sequence(seed).spawn(n)  # child i has spawn key (i,), whatever n
    images, masks, labels = [], [], []
    for child in children:
        pick = _child(child, 3)
        count = int(pick.integers(1, 4)) if pick.random() < lesion_fraction else 0
        ph = make_phantom(size=size, seed=child, kind=kind, texture=texture, lesions=count)
        images.append(ph.image)
        masks.append(ph.lesion_mask)
        labels.append(int(ph.lesion_mask.any()))
    return ImageSet(
        images=np.stack(images),  # (N, size, size) HU
        labels=np.asarray(labels, np.int64),
        class_names=["normal", "lesion"],
        masks=np.stack(masks),
        mask_names=["background", "lesion"],
        groups=np.arange(n, dtype=np.int64),
        sources=[f"phantom {kind} seed={seed} #{i}" for i in range(n)],
        value_range=(-1000.0, 1000.0),
        units="HU",
        name="phantom",
        extra={"kind": kind, "seed": seed, "texture": texture, "lesion_fraction": lesion_fraction,
               "tissues": list(TISSUES[kind])},
    )


#: the relative contrast of lesions simulated into phantom brain (``LesionConfig.contrast``): 0.7-0.95
#: of the brain's 24-42 HU, about the generator's own lesions of ±20-60 HU.
LESION_CONTRAST = (0.7, 0.95)


def tissue_masks(data: ImageSet, tissue: str = "brain") -> np.ndarray:
    """Where each lesion-free phantom of ``data`` holds ``tissue``, less its border pixels.

    Args:
        data: phantoms drawn by :func:`phantom_set` (or a subset of them, with their
            ``sources`` and ``extra``): image ``#i`` of seed ``s`` is redrawn from
            ``SeedSequence(s, spawn_key=(i,))`` to find its tissue map.
        tissue: one of the phantom kind's :data:`TISSUES`.

    Returns:
        ``(N, S, S)`` booleans, eroded by one pixel: not the pixels that partly hold another
        tissue (bone or CSF at the brain's border).

    Raises:
        MedganError: ``data`` is not such a set, or an image is not the lesion-free phantom redrawn.
    """
    extra = data.extra or {}
    kind = extra.get("kind")
    if kind not in TISSUES or tissue not in TISSUES[kind] or data.sources is None:
        raise MedganError(f"the {tissue} of phantoms needs a set drawn by phantom_set, with its sources and kind",
                          hint=f"use a {'/'.join(k for k in KINDS if tissue in TISSUES[k])} phantom set")
    label = TISSUES[kind].index(tissue)
    masks = []
    for image, source in zip(data.images, data.sources):
        index = int(source.rsplit("#", 1)[1])
        ph = make_phantom(image.shape[-1], np.random.SeedSequence(extra["seed"], spawn_key=(index,)), kind, extra["texture"])
        if not np.array_equal(ph.clean, image):
            raise MedganError(f"{source} is not the lesion-free phantom redrawn", hint="give lesion-free phantoms at their drawn size")
        masks.append(ndimage.binary_erosion(ph.tissue == label))
    return np.stack(masks)
