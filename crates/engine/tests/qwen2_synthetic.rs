//! The Qwen2 path of the embedded engine on a small synthetic GGUF written here with
//! candle's GGUF writer: tiny deterministic weights, a byte-level vocabulary with a
//! few merges, the `qwen2` pre-tokenizer and a ChatML template. It checks that a
//! second architecture loads, tokenizes, generates, streams and stays deterministic;
//! it says nothing about output quality (the weights are not trained).
#![allow(clippy::unwrap_used)]

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use confide_engine::tokenizer::PreTokenizer;
use confide_engine::{ChatMessage, EmbeddedEngine, Engine, GenerateParams, LoadOptions, Role};

const DIM: usize = 64;
const HEADS: u32 = 4;
const KV_HEADS: u32 = 2;
const FFN: usize = 128;
const LAYERS: usize = 2;

/// GPT-2's byte-to-character map (the same table the tokenizer uses).
fn byte_chars() -> Vec<char> {
    let printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut out = vec!['\0'; 256];
    let mut next = 256;
    for b in 0..256u32 {
        let c = if printable.contains(&b) {
            b
        } else {
            next += 1;
            next - 1
        };
        out[b as usize] = char::from_u32(c).unwrap();
    }
    out
}

fn weights(shape: &[usize], salt: f32) -> QTensor {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| ((i as f32 * 0.7311 + salt).sin()) * 0.08)
        .collect();
    let t = Tensor::from_vec(data, shape, &Device::Cpu).unwrap();
    QTensor::quantize(&t, GgmlDType::F32).unwrap()
}

fn ones(n: usize) -> QTensor {
    let t = Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap();
    QTensor::quantize(&t, GgmlDType::F32).unwrap()
}

fn write_model(path: &std::path::Path) {
    let chars = byte_chars();
    let mut tokens: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
    let g = chars[usize::from(b' ')];
    let merges = vec![format!("{g} t"), "h e".to_owned(), format!("{g}t he")];
    tokens.push(format!("{g}t"));
    tokens.push("he".to_owned());
    tokens.push(format!("{g}the"));
    for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
        tokens.push(special.to_owned());
    }
    let vocab = tokens.len();
    let mut types = vec![Value::I32(1); vocab];
    for t in types.iter_mut().skip(vocab - 3) {
        *t = Value::I32(3);
    }
    let im_end = (vocab - 1) as u32;

    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("qwen2".into())),
        ("general.name", Value::String("synthetic-qwen2".into())),
        ("qwen2.attention.head_count", Value::U32(HEADS)),
        ("qwen2.attention.head_count_kv", Value::U32(KV_HEADS)),
        ("qwen2.embedding_length", Value::U32(DIM as u32)),
        ("qwen2.context_length", Value::U32(256)),
        ("qwen2.block_count", Value::U32(LAYERS as u32)),
        ("qwen2.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ("qwen2.rope.freq_base", Value::F32(10000.0)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("qwen2".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        (
            "tokenizer.ggml.merges",
            Value::Array(merges.into_iter().map(Value::String).collect()),
        ),
        ("tokenizer.ggml.eos_token_id", Value::U32(im_end)),
        (
            "tokenizer.chat_template",
            Value::String(
                "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                    .into(),
            ),
        ),
    ];
    let kv = (DIM / HEADS as usize) * KV_HEADS as usize;
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), weights(&[vocab, DIM], 0.1)),
        ("output_norm.weight".into(), ones(DIM)),
        ("output.weight".into(), weights(&[vocab, DIM], 0.2)),
    ];
    for l in 0..LAYERS {
        let s = l as f32;
        let p = format!("blk.{l}");
        tensors.extend([
            (format!("{p}.attn_q.weight"), weights(&[DIM, DIM], 1.0 + s)),
            (format!("{p}.attn_k.weight"), weights(&[kv, DIM], 2.0 + s)),
            (format!("{p}.attn_v.weight"), weights(&[kv, DIM], 3.0 + s)),
            (format!("{p}.attn_q.bias"), weights(&[DIM], 4.0 + s)),
            (format!("{p}.attn_k.bias"), weights(&[kv], 5.0 + s)),
            (format!("{p}.attn_v.bias"), weights(&[kv], 6.0 + s)),
            (
                format!("{p}.attn_output.weight"),
                weights(&[DIM, DIM], 7.0 + s),
            ),
            (format!("{p}.attn_norm.weight"), ones(DIM)),
            (
                format!("{p}.ffn_gate.weight"),
                weights(&[FFN, DIM], 8.0 + s),
            ),
            (
                format!("{p}.ffn_down.weight"),
                weights(&[DIM, FFN], 9.0 + s),
            ),
            (format!("{p}.ffn_up.weight"), weights(&[FFN, DIM], 10.0 + s)),
            (format!("{p}.ffn_norm.weight"), ones(DIM)),
        ]);
    }
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
}

#[tokio::test]
async fn synthetic_qwen2_loads_tokenizes_and_generates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qwen2.gguf");
    write_model(&path);
    let engine = EmbeddedEngine::open(&path, LoadOptions::default())
        .await
        .unwrap();
    assert_eq!(engine.info().architecture, "qwen2");
    assert_eq!(engine.info().context_length, Some(256));
    let tok = engine.tokenizer();
    assert_eq!(tok.pre_tokenizer(), PreTokenizer::Qwen2);
    // " the" merges to one token through the two-step merge chain; "12" is two pieces
    // under the Qwen2 pattern (one digit each).
    let the = tok.token_id("Ġthe").unwrap();
    assert_eq!(tok.encode(" the").unwrap(), vec![the]);
    assert_eq!(tok.encode("12").unwrap().len(), 2);
    assert_eq!(
        tok.decode(&tok.encode("I'M here 12\n\n").unwrap()).as_str(),
        "I'M here 12\n\n"
    );

    let msgs = || vec![ChatMessage::new(Role::User, "hello there")];
    let p = GenerateParams {
        max_tokens: 12,
        repeat_penalty: 1.0,
        ..GenerateParams::default()
    };
    let (a, da) = engine
        .generate(msgs(), p)
        .await
        .unwrap()
        .collect_text()
        .await
        .unwrap();
    let (b, db) = engine
        .generate(msgs(), p)
        .await
        .unwrap()
        .collect_text()
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(da, db);
    assert!(da.completion_tokens.unwrap() <= 12);
    assert!(da.prompt_tokens.unwrap() > 5);
    // Prompt too long for the 256-token context.
    let long = vec![ChatMessage::new(Role::User, "x ".repeat(300))];
    assert!(matches!(
        engine.generate(long, p).await,
        Err(confide_engine::EngineError::ContextOverflow { context: 256, .. })
    ));
}
