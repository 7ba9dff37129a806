//! Spin variable templates: `"prefix-{{ name }}-suffix"`.

/// A parsed template: literal text and references to application variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("template {text:?} has `{{{{` without `}}}}`"))?;
            let name = after[..end].trim();
            if !is_variable_name(name) {
                return Err(format!(
                    "template {text:?} refers to {name:?}, which is not a valid variable name \
                     (lowercase letters, digits and '_', starting with a letter)"
                ));
            }
            parts.push(Part::Variable(name.to_string()));
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            return Err(format!("template {text:?} has `}}}}` without `{{{{`"));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The application variables this template reads.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Renders with `lookup` giving each variable's value.
    pub fn render<E>(
        &self,
        mut lookup: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<String, E> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.push_str(l),
                Part::Variable(v) => out.push_str(&lookup(v)?),
            }
        }
        Ok(out)
    }
}

pub fn is_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_literals_and_variables() {
        let t = Template::parse("https://{{ host }}:{{port}}/x").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["host", "port"]);
        let out: Result<_, ()> =
            t.render(|v| Ok(if v == "host" { "h".into() } else { "1".into() }));
        assert_eq!(out.unwrap(), "https://h:1/x");
    }

    #[test]
    fn rejects_malformed() {
        assert!(Template::parse("{{ host").is_err());
        assert!(Template::parse("{{ Host }}").is_err());
        assert!(Template::parse("a }} b").is_err());
    }
}
