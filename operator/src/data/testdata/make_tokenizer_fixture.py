"""Writes unigram-tokenizer.json: a SentencePiece-style Unigram tokenizer (Metaspace, `</s>` as end
of document, `<unk>`) trained by Python `tokenizers`, so the tests load a tokenizer.json that our
own trainer did not make, of another model type. Rerun after editing:

    python make_tokenizer_fixture.py      (any python with `tokenizers` installed)
"""
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A quiet teacher walks toward the old river.",
    "def add(a, b): return a + b",
    "Question: 12 + 30 = Answer: 42",
] * 50

tokenizer = Tokenizer(models.Unigram())
tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
tokenizer.decoder = decoders.Metaspace()
trainer = trainers.UnigramTrainer(vocab_size=150, special_tokens=["<unk>", "</s>"], unk_token="<unk>", show_progress=False)
tokenizer.train_from_iterator(CORPUS, trainer)
tokenizer.save(os.path.join(HERE, "unigram-tokenizer.json"))
