"""Peak memory of reading a CT study as a training set: bounded by what is kept, or by the
study's native size?

Writes N synthetic 512 x 512 int16 CT slices (a body of soft tissue and bone in air, HU
stored with intercept -1024, as scanners write them) as DICOM series of 100 slices, one
folder per series (``--layout flat``: every file in one folder, as a PACS export), in a
temporary folder deleted afterwards (free disk is checked first).
Then, for each API, a fresh Python process reads the folder at ``--size`` and reports its
peak resident memory (``VmHWM``): ``source`` is what ``medgan data show --size`` calls
(:func:`medgan.data.load_source`), ``training`` what ``medgan train`` calls
(:func:`medgan.data.training.load_training_data`: the set, the patient hold-out, the
``[-1, 1]`` tensors).

Prints one JSON object per N: the native study's size, the kept set's size, and per API the
peak RSS, the resident memory after the imports (torch, pydicom: paid before any pixel),
the peak per slice and the peak above the imports per slice. ``PYTHONPATH=/tmp/other-checkout``
measures another version of medgan (the child prints which ``medgan`` it imported).

    python benchmarks/read_memory.py [--slices 1000 10000] [--size 128] [--apis source training] [--layout folders|flat] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, generate_uid

from medgan.io.dicom import file_meta

SIDE = 512
PER_SERIES = 100
FILE_BYTES = SIDE * SIDE * 2 + 2048  # pixels plus a generous header

CHILD = r"""
import json, resource, sys, time

def peak_rss():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)

api, folder, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
import medgan, torch, pydicom, nibabel  # what a read imports anyway, paid before any pixel
from medgan.data.source_options import SourceOptions
from medgan.data.sources import load_source
from medgan.data.training import DataConfig, load_training_data
imports = peak_rss()
start = time.perf_counter()
if api == "source":
    data = load_source(folder, SourceOptions(size=size))
    kept = data.images.nbytes
    n = len(data)
else:
    dataset, holdout = load_training_data(DataConfig(source=folder, options=SourceOptions(size=size)))
    kept = dataset.data.images.nbytes + (0 if holdout is None else holdout.images.nbytes)
    n = len(dataset) + (0 if holdout is None else len(holdout))
seconds = time.perf_counter() - start
print(json.dumps({"medgan": medgan.__file__, "peak_rss": peak_rss(), "imports_rss": imports, "kept_bytes": kept,
                  "slices_kept": n, "seconds": round(seconds, 1)}))
"""


def ct_slice(k: int, n: int) -> np.ndarray:
    """Slice ``k`` of ``n``: an elliptic body (soft tissue 40 HU, a bone ring 700 HU, a dark
    lung-like hole) in air, growing and shrinking along the series; int16 stored values."""
    yy, xx = np.mgrid[:SIDE, :SIDE].astype(np.float32)
    scale = 0.75 + 0.2 * np.sin(np.pi * (k + 0.5) / n)
    r = ((yy - 256) / (150 * scale)) ** 2 + ((xx - 256) / (200 * scale)) ** 2
    hu = np.full((SIDE, SIDE), -1000.0, np.float32)
    hu[r < 1.0] = 40.0 + (k % 7)
    hu[(r > 0.85) & (r < 1.0)] = 700.0
    hu[((yy - 240) / 50) ** 2 + ((xx - 200) / 40) ** 2 < 1] = -850.0
    return (hu + 1024).astype(np.int16)


def write_series(folder: Path, series: int, n: int, study_uid: str) -> None:
    """One series of ``n`` axial CT slices in ``folder``, 2.5 mm apart."""
    folder.mkdir(parents=True, exist_ok=True)
    uid, frame = generate_uid(), generate_uid()
    for k in range(n):
        ds = Dataset()
        ds.file_meta = file_meta(CTImageStorage, generate_uid())  # explicit VR little endian, as medgan writes
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, uid, frame
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", series + 1, k + 1
        ds.PatientName, ds.PatientID = "SYNTHETIC^BENCHMARK", "BENCH"
        ds.ImagePositionPatient = [-200.0, -200.0, 2.5 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.78, 0.78], 2.5
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = SIDE
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = ct_slice(k, n).astype("<i2").tobytes()
        ds.save_as(folder / f"S{series:03d}IM{k:04d}.dcm", enforce_file_format=True)


def write_study(root: Path, n_slices: int, flat: bool = False) -> Path:
    """``n_slices`` slices in series of ``PER_SERIES``, one folder per series (or all in one)."""
    study, study_uid = root / f"study-{n_slices}", generate_uid()
    for series, first in enumerate(range(0, n_slices, PER_SERIES)):
        folder = study if flat else study / f"series-{series:03d}"
        write_series(folder, series, min(PER_SERIES, n_slices - first), study_uid)
    return study


def measure(api: str, folder: Path, size: int) -> dict:
    """Peak memory of one fresh process reading ``folder`` through ``api``."""
    done = subprocess.run([sys.executable, "-c", CHILD, api, str(folder), str(size)], capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, nargs="+", default=[1000, 10000], help="study sizes N to measure (slices)")
    parser.add_argument("--size", type=int, default=128, help="the --size the set is read at")
    parser.add_argument("--apis", nargs="+", default=["source", "training"], choices=("source", "training"))
    parser.add_argument("--layout", default="folders", choices=("folders", "flat"), help="one folder per series, or all files in one folder")
    parser.add_argument("--tmp", default=None, help="where the temporary study is written (default: the system's temp folder)")
    args = parser.parse_args()

    for n in args.slices:
        root = Path(tempfile.mkdtemp(prefix="medgan-read-memory-", dir=args.tmp))
        try:
            need, free = n * FILE_BYTES, shutil.disk_usage(root).free
            if need > 0.8 * free:
                print(json.dumps({"slices": n, "error": f"needs {need / 2**30:.1f} GiB of disk, {free / 2**30:.1f} GiB free in {root}"}))
                continue
            start = time.perf_counter()
            study = write_study(root, n, flat=args.layout == "flat")
            written = time.perf_counter() - start
            native = n * SIDE * SIDE * 4  # float32, as every reader returns pixels
            row = {"benchmark": "read_memory", "slices": n, "series": -(-n // PER_SERIES), "layout": args.layout, "side": SIDE, "size": args.size,
                   "dicom_bytes": sum(f.stat().st_size for f in study.rglob("*.dcm")), "native_float32_bytes": native,
                   "kept_bytes_expected": n * args.size * args.size * 4, "write_seconds": round(written, 1)}
            for api in args.apis:
                result = measure(api, study, args.size)
                if "peak_rss" in result:
                    result["peak_bytes_per_slice"] = round(result["peak_rss"] / n)
                    result["read_bytes_per_slice"] = round((result["peak_rss"] - result["imports_rss"]) / n)
                    result["peak_over_kept"] = round((result["peak_rss"] - result["imports_rss"]) / max(result["kept_bytes"], 1), 2)
                row[api] = result
            print(json.dumps(row), flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
