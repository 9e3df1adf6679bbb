"""Named recommendation datasets: files, URLs, checksums, licences and citations."""

from __future__ import annotations

from attnkit.core.data import Dataset, RemoteFile, register

__all__ = ["DATASET_FILES"]

_AMAZON = "Amazon review data (McAuley et al.), research use only"

register(Dataset(
    id="sasrec-games",
    description="Amazon Video Games as preprocessed by the SASRec authors: `user item` per line, time order",
    files=(RemoteFile(
        path="Video.txt",
        url="https://raw.githubusercontent.com/kang205/SASRec/master/data/Video.txt",
        sha256="b7376fe24430743f411dc7f567285657b2adb3f74361cc7ba0aee94f3024b651",
        size=3187124,
    ),),
    licence=f"SASRec repository Apache-2.0; {_AMAZON}",
    citation="Kang & McAuley, Self-Attentive Sequential Recommendation, ICDM 2018",
    homepage="https://github.com/kang205/SASRec",
))

register(Dataset(
    id="s3rec-beauty",
    description="Amazon Beauty as preprocessed for S3-Rec: one user per line, `user item item ...`",
    files=(RemoteFile(
        path="Beauty.txt",
        url="https://raw.githubusercontent.com/RUCAIBox/CIKM2020-S3Rec/master/data/Beauty.txt",
        sha256="226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",
        size=1090094,
    ),),
    licence=f"no licence file upstream; {_AMAZON}",
    citation="Zhou et al., S3-Rec: Self-Supervised Learning for Sequential Recommendation, CIKM 2020",
    homepage="https://github.com/RUCAIBox/CIKM2020-S3Rec",
))

register(Dataset(
    id="ml-1m",
    description="MovieLens 1M ratings (ratings.dat inside ml-1m.zip); every rating is an action",
    files=(RemoteFile(
        path="ml-1m.zip",
        url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        extracted=("ml-1m/ratings.dat",),
    ),),
    licence="GroupLens MovieLens terms: research use, no redistribution, cite Harper & Konstan 2015",
    citation="Harper & Konstan, The MovieLens Datasets: History and Context, ACM TiiS 2015",
    homepage="https://grouplens.org/datasets/movielens/1m/",
))

register(Dataset(
    id="ml-100k",
    description="MovieLens 100k ratings (u.data inside ml-100k.zip); every rating is an action",
    files=(RemoteFile(
        path="ml-100k.zip",
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        size=4924029,
        extracted=("ml-100k/u.data",),
    ),),
    licence="GroupLens MovieLens terms: research use, no redistribution, cite Harper & Konstan 2015",
    citation="Harper & Konstan, The MovieLens Datasets: History and Context, ACM TiiS 2015",
    homepage="https://grouplens.org/datasets/movielens/100k/",
))

#: dataset id -> (registered file, member inside an archive or None, reader format)
DATASET_FILES: dict[str, tuple[str, str | None, str]] = {
    "sasrec-games": ("Video.txt", None, "sasrec"),
    "s3rec-beauty": ("Beauty.txt", None, "user_sequences"),
    "ml-1m": ("ml-1m.zip", "ml-1m/ratings.dat", "movielens"),
    "ml-100k": ("ml-100k.zip", "ml-100k/u.data", "movielens"),
}
