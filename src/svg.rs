//! Writing SVG (and the other XML Waymark serves): escaping text and attribute values, and the
//! element builder every drawer uses — the waterfall, histogram, dependency map, sparkline and
//! uptime badge of the pages, and the digest's chart.
//!
//! Values in SVG come from journey files and monitored services (step names, hosts), so the
//! builder escapes every attribute value and text it is given; markup goes in only as another
//! [`Element`]. Numbers are formatted by the caller (`format_args!("{x:.1}")`,
//! [`crate::format::number`]) so each drawer keeps the precision its pixels need.

#![deny(clippy::disallowed_methods)]

use std::fmt::{self, Display, Write as _};

/// `text` safe inside XML text and double- or single-quoted attribute values: `&`, `<`, `>`,
/// `"` and `'` as entities. The mail templates escape with it too (see `templates`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One element: a name, attributes in the order given and content. Written self-closed
/// (`<rect …/>`) when it has no content.
#[derive(Debug, Clone)]
pub struct Element {
    name: &'static str,
    attrs: String,
    content: String,
}

/// An element with no attribute yet.
pub fn element(name: &'static str) -> Element {
    Element {
        name,
        attrs: String::new(),
        content: String::new(),
    }
}

/// An inline figure for a page: `<svg class="…" viewBox="0 0 w h" role="img" aria-label="…">`.
/// It is styled by its class from `ui/static/waymark.css` (the pages' CSP forbids inline
/// style), scales with its container, and `label` says in words what it shows.
pub fn figure(class: &str, width: impl Display, height: impl Display, label: &str) -> Element {
    element("svg")
        .attr("class", class)
        .attr("viewBox", format_args!("0 0 {width} {height}"))
        .attr("role", "img")
        .attr("aria-label", label)
}

/// A standalone document of a fixed size (a file, an image to rasterise or embed).
pub fn document(width: impl Display, height: impl Display) -> Element {
    element("svg")
        .attr("xmlns", "http://www.w3.org/2000/svg")
        .attr("width", &width)
        .attr("height", &height)
        .attr("viewBox", format_args!("0 0 {width} {height}"))
}

/// `<text class="…" x="…" y="…">text</text>` (no class attribute when `class` is empty).
pub fn text(class: &str, x: impl Display, y: impl Display, text: &str) -> Element {
    let e = element("text");
    let e = if class.is_empty() { e } else { e.class(class) };
    e.attr("x", x).attr("y", y).text(text)
}

impl Element {
    /// Adds `name="value"`, the value escaped.
    pub fn attr(mut self, name: &str, value: impl Display) -> Element {
        let _ = write!(self.attrs, " {name}=\"{}\"", escape(&value.to_string()));
        self
    }

    /// Adds a `class` attribute.
    pub fn class(self, class: &str) -> Element {
        self.attr("class", class)
    }

    /// Appends text content, escaped.
    pub fn text(mut self, text: &str) -> Element {
        self.content.push_str(&escape(text));
        self
    }

    /// Appends a `<title>`: the tooltip and the accessible name of what it is in, so no figure
    /// says something by colour or position alone.
    pub fn title(self, text: &str) -> Element {
        self.child(element("title").text(text))
    }

    /// Appends a child element.
    pub fn child(mut self, child: Element) -> Element {
        self.push(child);
        self
    }

    /// Appends a child element, for drawers that add children in a loop.
    pub fn push(&mut self, child: Element) {
        let _ = write!(self.content, "{child}");
    }

    /// Appends each child on a line of its own, for a document meant to be read as a file.
    pub fn lines(mut self, children: impl IntoIterator<Item = Element>) -> Element {
        for child in children {
            let _ = write!(self.content, "\n{child}");
        }
        self.content.push('\n');
        self
    }
}

impl Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.content.is_empty() {
            write!(f, "<{}{}/>", self.name, self.attrs)
        } else {
            write!(
                f,
                "<{}{}>{}</{}>",
                self.name, self.attrs, self.content, self.name
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_text_are_escaped() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
        let e = element("text")
            .class("tick")
            .attr("x", format_args!("{:.1}", 4.0))
            .text("<login>");
        assert_eq!(
            e.to_string(),
            "<text class=\"tick\" x=\"4.0\">&lt;login&gt;</text>"
        );
        let r = element("rect").attr("title", "\"q\"");
        assert_eq!(r.to_string(), "<rect title=\"&quot;q&quot;\"/>");
    }

    #[test]
    fn figures_and_documents() {
        let f = figure("spark", 96, 20, "p95 over 24 hours").title("a & b");
        assert_eq!(
            f.to_string(),
            "<svg class=\"spark\" viewBox=\"0 0 96 20\" role=\"img\" aria-label=\"p95 over 24 \
             hours\"><title>a &amp; b</title></svg>"
        );
        let d = document(600, 160).lines([element("rect"), element("line")]);
        assert_eq!(
            d.to_string(),
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"160\" \
             viewBox=\"0 0 600 160\">\n<rect/>\n<line/>\n</svg>"
        );
    }
}
