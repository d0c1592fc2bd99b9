//! The Sigma `condition:` expression: `selection and not allowlist`,
//! `1 of selection_*`, `all of them`, parentheses. Precedence, loosest
//! first: `or`, `and`, `not`.

/// A parsed condition over selections, by index into the selection list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    Selection(usize),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

/// A condition error with the character offset it was found at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CondError {
    pub offset: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token<'_>)>, CondError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                tokens.push((at, Token::Open));
                chars.next();
            }
            ')' => {
                tokens.push((at, Token::Close));
                chars.next();
            }
            c if c.is_alphanumeric() || c == '_' || c == '*' || c == '.' || c == '-' => {
                let mut end = at;
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' || c == '*' || c == '.' || c == '-' {
                        end = i + c.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push((at, Token::Word(&text[at..end])));
            }
            other => return Err(CondError { offset: at, message: format!("unexpected character `{other}`") }),
        }
    }
    Ok(tokens)
}

struct Parser<'a, 'n> {
    tokens: Vec<(usize, Token<'a>)>,
    pos: usize,
    names: &'n [String],
    end: usize,
}

/// Parses `text` against the selection `names` of the rule.
pub fn parse(text: &str, names: &[String]) -> Result<Cond, CondError> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err(CondError { offset: 0, message: "the condition is empty".into() });
    }
    let mut parser = Parser { tokens, pos: 0, names, end: text.len() };
    let cond = parser.or()?;
    if let Some((at, token)) = parser.tokens.get(parser.pos) {
        let message = match token {
            Token::Close => "unbalanced `)`".to_owned(),
            Token::Word(w) => format!("expected `and` or `or` before `{w}`"),
            Token::Open => "expected `and` or `or` before `(`".to_owned(),
        };
        return Err(CondError { offset: *at, message });
    }
    Ok(cond)
}

impl<'a> Parser<'a, '_> {
    fn peek_word(&self) -> Option<&'a str> {
        match self.tokens.get(self.pos) {
            Some((_, Token::Word(w))) => Some(w),
            _ => None,
        }
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(at, _)| *at)
    }

    fn or(&mut self) -> Result<Cond, CondError> {
        let mut terms = vec![self.and()?];
        while self.peek_word() == Some("or") {
            self.pos += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Cond::Or(terms) })
    }

    fn and(&mut self) -> Result<Cond, CondError> {
        let mut terms = vec![self.not()?];
        while self.peek_word() == Some("and") {
            self.pos += 1;
            terms.push(self.not()?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Cond::And(terms) })
    }

    fn not(&mut self) -> Result<Cond, CondError> {
        if self.peek_word() == Some("not") {
            self.pos += 1;
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Cond, CondError> {
        let at = self.offset();
        match self.tokens.get(self.pos).cloned() {
            None => Err(CondError { offset: at, message: "the condition ends too early".into() }),
            Some((_, Token::Close)) => Err(CondError { offset: at, message: "unexpected `)`".into() }),
            Some((_, Token::Open)) => {
                self.pos += 1;
                let inner = self.or()?;
                match self.tokens.get(self.pos) {
                    Some((_, Token::Close)) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err(CondError { offset: self.offset(), message: "missing `)`".into() }),
                }
            }
            Some((_, Token::Word(word))) => {
                self.pos += 1;
                match word {
                    "and" | "or" | "of" | "them" => {
                        Err(CondError { offset: at, message: format!("expected a selection name, found `{word}`") })
                    }
                    "1" | "any" | "all" => self.quantified(word, at),
                    name => self.selection(name, at),
                }
            }
        }
    }

    fn quantified(&mut self, quantifier: &str, at: usize) -> Result<Cond, CondError> {
        if self.peek_word() != Some("of") {
            return Err(CondError { offset: self.offset(), message: format!("expected `of` after `{quantifier}`") });
        }
        self.pos += 1;
        let pattern_at = self.offset();
        let Some(pattern) = self.peek_word() else {
            return Err(CondError { offset: pattern_at, message: "expected a selection pattern or `them`".into() });
        };
        self.pos += 1;
        let matched: Vec<Cond> = self
            .names
            .iter()
            .enumerate()
            .filter(|(_, name)| pattern == "them" || glob_match(pattern, name))
            .map(|(i, _)| Cond::Selection(i))
            .collect();
        if matched.is_empty() {
            return Err(CondError { offset: pattern_at, message: format!("`{pattern}` matches no selection") });
        }
        let _ = at;
        Ok(if quantifier == "all" { Cond::And(matched) } else { Cond::Or(matched) })
    }

    fn selection(&self, name: &str, at: usize) -> Result<Cond, CondError> {
        match self.names.iter().position(|n| n == name) {
            Some(index) => Ok(Cond::Selection(index)),
            None => Err(CondError {
                offset: at,
                message: format!("unknown selection `{name}` (defined: {})", self.names.join(", ")),
            }),
        }
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((prefix, rest)) => {
            let Some(tail) = name.strip_prefix(prefix) else {
                return false;
            };
            if rest.is_empty() {
                return true;
            }
            (0..=tail.len()).filter(|&i| tail.is_char_boundary(i)).any(|i| glob_match(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["sel_a", "sel_b", "allowlist"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn precedence_and_parentheses() {
        let c = parse("sel_a or sel_b and not allowlist", &names()).unwrap();
        assert_eq!(
            c,
            Cond::Or(vec![
                Cond::Selection(0),
                Cond::And(vec![Cond::Selection(1), Cond::Not(Box::new(Cond::Selection(2)))])
            ])
        );
        let c = parse("(sel_a or sel_b) and not allowlist", &names()).unwrap();
        assert!(matches!(c, Cond::And(_)));
    }

    #[test]
    fn quantifiers() {
        assert_eq!(parse("1 of sel_*", &names()).unwrap(), Cond::Or(vec![Cond::Selection(0), Cond::Selection(1)]));
        assert_eq!(parse("all of them", &names()).unwrap(), Cond::And((0..3).map(Cond::Selection).collect()));
    }

    #[test]
    fn errors_point_at_the_problem() {
        assert_eq!(parse("sel_a and nope", &names()).unwrap_err().offset, 10);
        assert_eq!(parse("(sel_a", &names()).unwrap_err().offset, 6);
        assert_eq!(parse("sel_a sel_b", &names()).unwrap_err().offset, 6);
        assert!(parse("1 of x*", &names()).unwrap_err().message.contains("matches no selection"));
        assert!(parse("sel_a & sel_b", &names()).is_err());
        assert!(parse("", &names()).is_err());
        assert!(parse("not", &names()).is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_match("sel_*", "sel_a"));
        assert!(glob_match("*list", "allowlist"));
        assert!(glob_match("s*_*", "sel_b"));
        assert!(!glob_match("sel_*", "allowlist"));
    }
}
