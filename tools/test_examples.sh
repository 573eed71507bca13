#!/usr/bin/env bash
# `make test-examples`: runs the example hosts examples/embed_ids and
# examples/embed_text (built by `make examples`) on the generated test model and
# the real one, and checks their output and their errors.
#
#   make examples && tools/test_examples.sh
. "$(dirname "$0")/common.sh"
ex=build/examples
tokenizer=$(dirname "$REAL_MODEL")/tokenizer.json
tiny=$TEST_MODELS/tiny_bert.onnx
set -x

# vectors ROWS DIM FILE: exactly ROWS lines of DIM numbers, each of norm 1.
vectors() {
    local -
    set +x
    awk -v rows="$1" -v dim="$2" 'NF != dim { print FILENAME ": line " NR ": " NF " values, not " dim; exit 1 }
        { s = 0; for (i = 1; i <= NF; i++) s += $i * $i; if (s < 0.9999 || s > 1.0001) { print FILENAME ": line " NR ": norm^2 " s; exit 1 } }
        END { if (NR != rows) { print FILENAME ": " NR " lines, not " rows; exit 1 } }' "$3"
}
# fails STATUS PATTERN COMMAND...: the command exits with STATUS and its stderr matches PATTERN.
fails() {
    local - status=$1 pattern=$2 rc=0
    set +x
    shift 2
    "$@" > /dev/null 2> "$ex/err.txt" || rc=$?
    test "$rc" -eq "$status" && grep -q "$pattern" "$ex/err.txt"
}

printf '1 5 9 2\n# a comment, then a blank line\n\n1 7 7 3 2 | 1 1 1 1 0\n' > "$ex/ids.txt"
"$ex/embed_ids" "$tiny" "$ex/ids.txt" > "$ex/tiny.out"
vectors 2 32 "$ex/tiny.out"
# Masked-out trailing tokens change nothing: the same vector as without them.
echo '1 7 7 3' | "$ex/embed_ids" "$tiny" > "$ex/tiny_short.out"
sed -n 2p "$ex/tiny.out" | cmp - "$ex/tiny_short.out"
"$ex/embed_ids" --out-dim 8 --seq-len 8 "$tiny" < "$ex/ids.txt" > "$ex/tiny8.out"
vectors 2 8 "$ex/tiny8.out"
# Errors: a missing model, an id outside the vocabulary, bad input.
fails 1 'cannot open missing.onnx: std_create_error:' "$ex/embed_ids" missing.onnx < /dev/null
echo '1 100' | fails 1 'line 1: ort_error:' "$ex/embed_ids" "$tiny"
echo '1 x' | fails 2 'line 1: not an integer: x' "$ex/embed_ids" "$tiny"
# The real model: "[CLS] hello world [SEP]".
echo '101 7592 2088 102' | "$ex/embed_ids" "$REAL_MODEL" > "$ex/real.out"
vectors 1 384 "$ex/real.out"

# Text in: every line is a text (a blank one too); its vector is that of its ids.
printf 'hello world\n\nA man is playing a guitar.\n' > "$ex/text.txt"
"$ex/embed_text" "$REAL_MODEL" "$tokenizer" "$ex/text.txt" > "$ex/text.out"
vectors 3 384 "$ex/text.out"
sed -n 1p "$ex/text.out" | cmp - "$ex/real.out"
echo 'hello world' | "$ex/embed_text" --out-dim 8 --seq-len 8 "$REAL_MODEL" "$tokenizer" > "$ex/text8.out"
vectors 1 8 "$ex/text8.out"
# Errors: a bad tokenizer, a line that is not UTF-8, no tokenizer given.
fails 1 'cannot open .* with missing.json: std_create_error:cannot load tokenizer missing.json' \
    "$ex/embed_text" "$REAL_MODEL" missing.json < /dev/null
printf 'ok\n\377\n' | fails 1 'line 2: std_error:text is not valid UTF-8' "$ex/embed_text" "$REAL_MODEL" "$tokenizer"
fails 2 'give the model and its tokenizer.json' "$ex/embed_text" "$REAL_MODEL" < /dev/null
{ set +x; } 2> /dev/null
echo "test-examples: ok"
