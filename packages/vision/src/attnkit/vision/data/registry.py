"""Registers the vision datasets (monuseg, isbi2012-em) with :mod:`attnkit.core.data`."""

from __future__ import annotations

from attnkit.core.data import Dataset, RemoteFile, register
from attnkit.vision.data._files import ISBI2012_FILES, MONUSEG_FILES

__all__ = ["ISBI2012", "MONUSEG"]

_UCTRANSNET = "https://raw.githubusercontent.com/McGregorWwww/UCTransNet/main/datasets/MoNuSeg/"
_UNET = "https://raw.githubusercontent.com/zhixuhao/unet/master/data/membrane/train/"


def _files(table: str, base_url: str) -> tuple[RemoteFile, ...]:
    out = []
    for line in table.strip().splitlines():
        path, sha, size = line.split()
        out.append(RemoteFile(path=path, url=base_url + path, sha256=sha, size=int(size)))
    return tuple(out)


MONUSEG = register(Dataset(
    id="monuseg",
    description="MoNuSeg 2018 nuclei segmentation, H&E 1000x1000, UCTransNet split (24 train / 6 val / "
                "14 test)",
    files=_files(MONUSEG_FILES, _UCTRANSNET),
    licence="CC BY-NC-SA 4.0 (MoNuSeg, TCGA images)",
    citation="Kumar et al., A multi-organ nucleus segmentation challenge, IEEE TMI 2020; split of "
             "Wang et al., UCTransNet, AAAI 2022",
    homepage="https://monuseg.grand-challenge.org/",
))

ISBI2012 = register(Dataset(
    id="isbi2012-em",
    description="ISBI 2012 EM membrane segmentation training stack, 30 slices 512x512 (no public test "
                "labels)",
    files=_files(ISBI2012_FILES, _UNET),
    licence="free for non-commercial segmentation software; cite Cardona et al. 2010",
    citation="Cardona et al., An integrated micro- and macroarchitectural analysis of the Drosophila brain "
             "by computer-assisted serial section electron microscopy, PLoS Biol 2010",
    homepage="https://imagej.net/events/isbi-2012-segmentation-challenge",
))
