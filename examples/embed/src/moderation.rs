//! [`WordList`], the chat's message hook: refuses messages that contain a listed word.

use std::collections::HashSet;

use async_trait::async_trait;
use chat_core::{
    ChatError,
    hooks::{Draft, MessageHook, Verdict},
};

/// What the sender of a refused message is told. It names the problem but not the word,
/// nor the list: a sender who learns the list learns how to get around it.
pub const REFUSED: &str = "your message contains a word this chat does not allow";

/// Refuses messages containing any of its words, as whole words and whatever their case
/// (`Spam!` matches `spam`; `spammer` does not). A word is a run of letters and digits
/// (Unicode), so list entries are single words of those.
///
/// It sees every message before it is stored: users' and the system messages posted with
/// `ChatHandle::send_message` alike, so `/announce-system` is moderated too.
#[derive(Debug, Clone, Default)]
pub struct WordList {
    /// Lowercase.
    words: HashSet<String>,
}

impl WordList {
    /// A list of `words`, empty entries skipped. Entries that are not single words (with
    /// spaces or punctuation) could never match: they are left out, with a warning.
    pub fn new<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> Self {
        let mut list = HashSet::new();
        for word in words {
            let word = word.as_ref().trim();
            if word.is_empty() {
                continue;
            }
            if !word.chars().all(char::is_alphanumeric) {
                tracing::warn!(word, "not a single word: left out of the word list");
                continue;
            }
            list.insert(word.to_lowercase());
        }
        Self { words: list }
    }

    /// How many words are listed.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether no word is listed (every message is accepted).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Whether `text` contains a listed word.
    pub fn matches(&self, text: &str) -> bool {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .any(|w| self.words.contains(&w.to_lowercase()))
    }
}

#[async_trait]
impl MessageHook for WordList {
    async fn check(&self, draft: Draft<'_>) -> Verdict {
        if !self.matches(draft.body) {
            return Verdict::Accept;
        }
        // Never the body: logs are no place for what users write.
        tracing::info!(from = %draft.from, conversation = %draft.conversation, "message refused by the word list");
        // `forbidden`, not `bad_request`: docs/protocol.md keeps `bad_request` for malformed
        // payloads, while this one is well formed and not allowed, and `forbidden`'s "do not
        // retry" is what the client should do (send it again unchanged, it is refused again).
        Verdict::Refuse(ChatError::forbidden(REFUSED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Listed words match whole and in any case; parts of longer words do not.
    #[test]
    fn matches_whole_words_in_any_case() {
        let list = WordList::new(["spam", "Scam"]);
        assert!(list.matches("spam"));
        assert!(list.matches("this is SPAM!"));
        assert!(list.matches("a scam, clearly"));
        assert!(list.matches("(Spam)"));
        assert!(!list.matches("spammer"));
        assert!(!list.matches("scampi for dinner"));
        assert!(!list.matches("hello"));
        assert!(!list.matches(""));
    }

    /// Entries that are not single words are left out rather than never matching silently.
    #[test]
    fn keeps_only_single_words() {
        let list = WordList::new(["", "two words", "ok", " padded "]);
        assert_eq!(list.len(), 2);
        assert!(list.matches("Padded"));
        assert!(!list.matches("two words"));
    }
}
