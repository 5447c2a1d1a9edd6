#!/usr/bin/env python3
"""Reference token ids for crates/engine/tests/tokenizer_ids.rs.

Independent of our Rust code: reads the GGUF with the `gguf` package (llama.cpp's
reader) and builds a Hugging Face `tokenizers` BPE from the same vocab and merges,
configured as SmolLM2's published tokenizer.json is: pre-tokenizer
Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False)],
ByteLevel decoder, the 17 control tokens as special tokens.

    python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install tokenizers gguf
    /tmp/tokvenv/bin/python tokenizer_reference.py models/SmolLM2-135M-Instruct.Q4_1.gguf

(produced with tokenizers 0.23.3 and gguf 0.19.0; prints Rust array literals.)
"""
import json
import sys

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

CASES = [
    "Hello, world!",
    "The year 2024 had 366 days.",
    "  multiple   spaces\n\nnew lines\ttabs  ",
    "naïve café — emoji 🎉 and ümlauts",
    "don't you'll I'm they've",
    "<|im_end|> is plain text here",
    "x=3.14159; y = 1,000,000",
    "你好，世界",
    "Alice: Let's meet at the Blue Door cafe on Friday at 7pm!",
]

CHAT = [
    ("system", "You are a helpful assistant."),
    ("user", "What is 12 + 30?"),
]


def main(path: str) -> None:
    r = GGUFReader(path)
    f = lambda k: r.fields[k].contents()
    tokens = f("tokenizer.ggml.tokens")
    types = f("tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in f("tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3]
    )
    for text in CASES:
        ids = tok.encode(text, add_special_tokens=False).ids
        # Control tokens must not be recognised inside plain text: our Rust encoder
        # never matches them, so encode with them disabled for the plain cases.
        if "<|im_end|>" in text:
            plain = Tokenizer(models.BPE(vocab=vocab, merges=merges))
            plain.pre_tokenizer = tok.pre_tokenizer
            ids = plain.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids) == text
        print(f"    ({json.dumps(text, ensure_ascii=False)}, &{ids}),")
    chat = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in CHAT)
    chat += "<|im_start|>assistant\n"
    print("    // chat:", json.dumps(chat))
    print("   ", tok.encode(chat, add_special_tokens=False).ids)


if __name__ == "__main__":
    main(sys.argv[1])
