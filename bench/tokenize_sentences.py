"""Tokenises bench/sentences.txt with the real tokenizer into a plain-text file
that the C benchmark, the bare ONNX Runtime run and the Python baseline all read.

Each row is what the legacy host passes to `embed`: ids, mask and types of
exactly SEQ_LEN values, truncated to SEQ_LEN and padded with 0.

Output (one sentence per line, whitespace-separated):
    <class> <real_len> <SEQ_LEN ids> <SEQ_LEN mask> <SEQ_LEN types>
preceded by one header line: `seq_len <SEQ_LEN> sentences <N>`. The class is
the sentence's length class by its real token count ([CLS] and [SEP]
included): short up to 12, medium 13-40, long above.

usage: tokenize_sentences.py TOKENIZER_JSON SENTENCES_TXT OUT_TXT [SEQ_LEN]
"""

import sys

from tokenizers import Tokenizer

# Upper bounds (real tokens) of the length classes; longer is "long".
CLASS_LIMITS = (("short", 12), ("medium", 40))


def length_class(real_len):
    for name, limit in CLASS_LIMITS:
        if real_len <= limit:
            return name
    return "long"


def read_sentences(path):
    """One sentence per line; blank lines and lines starting with # are skipped."""
    with open(path, encoding="utf-8") as f:
        lines = (line.strip() for line in f)
        return [line for line in lines if line and not line.startswith("#")]


def main(argv):
    if len(argv) not in (4, 5):
        raise SystemExit(__doc__)
    tokenizer_path, sentences_path, out_path = argv[1:4]
    seq_len = int(argv[4]) if len(argv) == 5 else 128
    tokenizer = Tokenizer.from_file(tokenizer_path)
    # The shipped tokenizer.json pads and truncates to its own length; the
    # legacy host's settings are set explicitly instead.
    tokenizer.enable_truncation(seq_len)
    tokenizer.enable_padding(length=seq_len, pad_id=0, pad_type_id=0)
    sentences = read_sentences(sentences_path)
    with open(out_path, "w", encoding="ascii") as out:
        out.write(f"seq_len {seq_len} sentences {len(sentences)}\n")
        for text in sentences:
            enc = tokenizer.encode(text)
            real_len = sum(1 for m in enc.attention_mask if m > 0)
            values = enc.ids + enc.attention_mask + enc.type_ids
            out.write(f"{length_class(real_len)} {real_len} {' '.join(map(str, values))}\n")
    print(f"tokenised {len(sentences)} sentences (seq_len {seq_len}) into {out_path}")


if __name__ == "__main__":
    main(sys.argv)
