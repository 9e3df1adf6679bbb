"""Datasets of the speech-quality application: released NISQA weights, the NISQA Corpus, clean speech."""

from __future__ import annotations

from attnkit.core.data import Dataset, RemoteFile, register

__all__ = ["CLEAN_SPEECH", "NISQA_CORPUS", "PRETRAINED", "WEIGHTS_DATASET", "WEIGHTS_LICENCE"]

WEIGHTS_DATASET = "nisqa-weights"
NISQA_CORPUS = "nisqa-corpus"
CLEAN_SPEECH = "clean-speech"
WEIGHTS_LICENCE = "CC BY-NC-SA 4.0 (Gabriel Mittag, Quality and Usability Lab, TU Berlin)"

#: checkpoint name -> file inside the ``nisqa-weights`` dataset folder.
PRETRAINED: dict[str, str] = {
    "nisqa": "nisqa.tar",
    "nisqa_mos_only": "nisqa_mos_only.tar",
    "nisqa_tts": "nisqa_tts.tar",
}

_GH = "https://github.com/gabrielmittag/NISQA/raw/fe84f0f252abec382b24367d5b22498a7ce34dbb/weights/"
_CITE = (
    "G. Mittag, B. Naderi, A. Chehadi, S. Möller. NISQA: A Deep CNN-Self-Attention Model for "
    "Multidimensional Speech Quality Prediction with Crowdsourced Datasets. Interspeech 2021."
)

register(
    Dataset(
        id=WEIGHTS_DATASET,
        description="The original NISQA checkpoints (NISQA_DIM, MOS-only, TTS naturalness); never bundled",
        files=(
            RemoteFile(
                "nisqa.tar",
                _GH + "nisqa.tar",
                "7ec4cf937514dd3f8860b21e66fabd8ca87a168572675ef8d979c4c4ad2e805c",
                1051663,
            ),
            RemoteFile(
                "nisqa_mos_only.tar",
                _GH + "nisqa_mos_only.tar",
                "16b2632bea0a481b1bba485587a8da2265f2c7797b525712ae0c072986ee783c",
                907215,
            ),
            RemoteFile(
                "nisqa_tts.tar",
                _GH + "nisqa_tts.tar",
                "c556a954cd9536360b4fe6f524ad432816509cd22f436f345b281a7851360656",
                1237159,
            ),
            RemoteFile(
                "LICENSE_model_weights",
                _GH + "LICENSE_model_weights",
                "5b8e7938e1b5e0a675869ffe429cc8e7cc187d76a7c6ea1e0546c412782a43da",
                20843,
            ),
        ),
        licence=WEIGHTS_LICENCE,
        citation=_CITE,
        homepage="https://github.com/gabrielmittag/NISQA",
    )
)

register(
    Dataset(
        id=NISQA_CORPUS,
        description="NISQA Corpus: 14,000+ speech samples with crowdsourced MOS, NOI, DIS, COL, LOUD "
        "(NISQA_Corpus.zip, extracted to NISQA_Corpus/NISQA_corpus_file.csv + NISQA_TRAIN_SIM/... folders)",
        files=(
            # No sha256: the repository publishes none and no verified copy was at hand (docs/datasets.md).
            RemoteFile(
                "NISQA_Corpus.zip",
                "https://depositonce.tu-berlin.de/bitstream/11303/13012.5/9/NISQA_Corpus.zip",
                extracted=("NISQA_Corpus/NISQA_corpus_file.csv",),
            ),
        ),
        licence="mixed: per-source terms of the speech and noise material, see the corpus wiki",
        citation=_CITE,
        homepage="https://github.com/gabrielmittag/NISQA/wiki/NISQA-Corpus",
    )
)

register(
    Dataset(
        id=CLEAN_SPEECH,
        description="Clean speech to build simulated quality corpora (any folder of clean speech works)",
        files=(),
        content=tuple(f"**/*.{ext}" for ext in ("wav", "flac", "ogg", "mp3")),
        licence="per sub-folder: Asterisk CC BY-SA 3.0, LibriVox public domain, LibriSpeech CC BY 4.0",
        homepage="https://www.openslr.org/12",
    )
)
