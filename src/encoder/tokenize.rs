//! Tokenizer loading: `tokenizer.json` when present, else a BERT WordPiece tokenizer built from
//! `vocab.txt` (lower-casing per `tokenizer_config.json`'s `do_lower_case`, default true).
//!
//! Whatever the file says, padding is switched off — the engine pads each batch to its own
//! longest sequence (all-MiniLM's `tokenizer.json` pads to a fixed 128, which would multiply the
//! work for 13-token terms by ten) — and truncation is set to the model's `max_len`.

use super::manifest::read_json_opt;
use super::EncoderError;
use std::path::Path;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{Model, Tokenizer, TruncationParams};

/// A tokenizer producing unpadded, truncated token ids with `[CLS]`/`[SEP]` added.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_len: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl TextTokenizer {
    /// Loads the tokenizer of a model folder, truncating to `max_len` tokens (specials included).
    pub fn load(dir: &Path, max_len: usize) -> Result<Self, EncoderError> {
        let json = dir.join("tokenizer.json");
        let mut inner = if json.exists() {
            Tokenizer::from_file(&json).map_err(|e| EncoderError::load(&json, e))?
        } else {
            wordpiece_from_vocab(dir)?
        };
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| EncoderError::load(dir, e))?;
        Ok(TextTokenizer { inner, max_len })
    }

    /// The maximum number of tokens of one text.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Token ids of one text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EncoderError> {
        let enc = self
            .inner
            .encode_fast(text, true)
            .map_err(|e| EncoderError::InvalidInput(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids of many texts (in parallel on the tokenizers' rayon pool for large inputs).
    pub fn encode_many<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
    ) -> Result<Vec<Vec<u32>>, EncoderError> {
        if texts.len() < 16 {
            return texts.iter().map(|t| self.encode(t.as_ref())).collect();
        }
        let inputs: Vec<&str> = texts.iter().map(|t| t.as_ref()).collect();
        let encs = self
            .inner
            .encode_batch_fast(inputs, true)
            .map_err(|e| EncoderError::InvalidInput(e.to_string()))?;
        Ok(encs.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }
}

/// Builds the classic BERT tokenizer (BertNormalizer, BertPreTokenizer, WordPiece,
/// `[CLS] … [SEP]`) from `vocab.txt`.
fn wordpiece_from_vocab(dir: &Path) -> Result<Tokenizer, EncoderError> {
    let vocab_path = dir.join("vocab.txt");
    if !vocab_path.exists() {
        return Err(EncoderError::load(
            dir,
            "neither tokenizer.json nor vocab.txt found",
        ));
    }
    let lowercase = read_json_opt(&dir.join("tokenizer_config.json"))?
        .and_then(|c| c.get("do_lower_case")?.as_bool())
        .unwrap_or(true);
    let vocab_str = vocab_path.to_string_lossy().into_owned();
    let wp = WordPiece::from_file(&vocab_str)
        .unk_token("[UNK]".to_string())
        .build()
        .map_err(|e| EncoderError::load(&vocab_path, e))?;
    let id = |tok: &str| {
        wp.token_to_id(tok).ok_or_else(|| {
            EncoderError::load(
                &vocab_path,
                format!("special token {tok} missing from vocab"),
            )
        })
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    let mut tok = Tokenizer::new(wp);
    tok.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
        .map_err(|e| EncoderError::load(dir, e))?;
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".to_string(), sep),
        ("[CLS]".to_string(), cls),
    )));
    Ok(tok)
}
