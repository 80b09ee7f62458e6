//! JSON Schema compatibility: does a reader schema accept every document a writer schema accepts?
//!
//! The rule set, close to Confluent's (named after its error types):
//! - `type`: every writer type must be a reader type (`integer` is read by `number`);
//! - `enum`/`const`: the reader's values must include the writer's; adding an `enum` narrows;
//! - numbers: `minimum`/`exclusiveMinimum` may not rise, `maximum`/`exclusiveMaximum` may not
//!   fall, `multipleOf` must divide the writer's;
//! - strings: `minLength` may not rise, `maxLength` may not fall, a `pattern` or `format` may
//!   not be added or changed;
//! - objects: the reader may not require a property the writer did not require; a property the
//!   writer declares must still be read (declared, or allowed by the reader's
//!   `additionalProperties`); a reader may not declare a new property whose value the writer's
//!   open content model allowed to be anything (Confluent's
//!   `PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL`) unless the new property accepts anything; closing an
//!   open model (`additionalProperties: false`) narrows it;
//! - arrays: `items` compare recursively, `minItems` may not rise, `maxItems` may not fall,
//!   `uniqueItems` may not be added;
//! - local `$ref`s (`#/$defs/…`, `#/definitions/…`) are followed; `anyOf`/`oneOf`: each writer
//!   branch must be read by some reader branch; other combinators (`allOf`, `not`,
//!   `if`/`then`/`else`) must be unchanged.
//!
//! So, in the usual terms: with a closed content model, adding optional properties is backward
//! compatible and removing them is not; with an open one, it is the other way round.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::avro::Incompatibility;

/// Everything that stops `reader` from accepting documents valid under `writer`.
pub(crate) fn check(reader: &Value, writer: &Value, budget: &super::Budget) -> Vec<Incompatibility> {
    let memo = std::cell::RefCell::default();
    let regexes = std::cell::RefCell::default();
    let mut checker = Checker {
        reader_root: reader,
        writer_root: writer,
        roots_equal: reader == writer,
        found: Vec::new(),
        seen: HashSet::new(),
        budget,
        memo: &memo,
        regexes: &regexes,
        depth: 0,
    };
    checker.compare(reader, writer, String::new());
    checker.found
}

struct Checker<'a> {
    reader_root: &'a Value,
    writer_root: &'a Value,
    roots_equal: bool,
    found: Vec<Incompatibility>,
    /// Pairs of `$ref`s already being compared, so recursive schemas terminate.
    seen: HashSet<(String, String)>,
    budget: &'a super::Budget,
    /// Whether a reader (sub)schema accepts a writer's, by their addresses: `anyOf` branches are
    /// tried again and again, which nested `anyOf`s would make exponential.
    memo: &'a std::cell::RefCell<std::collections::HashMap<(usize, usize), bool>>,
    /// `patternProperties` patterns compiled once per comparison (`None`: not compilable here).
    regexes: &'a std::cell::RefCell<std::collections::HashMap<String, Option<regex::Regex>>>,
    depth: usize,
}

/// Distinct `patternProperties` patterns one comparison compiles; beyond, it refuses rather than
/// guess (each compilation may take up to its 1 MiB size limit).
const MAX_PATTERNS: usize = 256;

const TYPES: [&str; 7] = ["null", "boolean", "object", "array", "number", "string", "integer"];

impl<'a> Checker<'a> {
    fn report(&mut self, kind: &'static str, at: &str, message: String) {
        let location = if at.is_empty() { "/".to_owned() } else { at.to_owned() };
        self.found.push(Incompatibility { kind, location, message });
    }

    fn resolve<'b>(root: &'b Value, schema: &'b Value) -> &'b Value {
        let mut current = schema;
        for _ in 0..32 {
            match current.get("$ref").and_then(Value::as_str) {
                Some(reference) if reference.starts_with('#') => match root.pointer(&reference[1..]) {
                    Some(target) => current = target,
                    None => return current,
                },
                _ => return current,
            }
        }
        current
    }

    fn compare<'b>(&mut self, reader: &'b Value, writer: &'b Value, at: String)
    where
        'a: 'b,
    {
        if !self.budget.step(self.depth) {
            return;
        }
        self.depth += 1;
        self.compare_resolved(reader, writer, at);
        self.depth -= 1;
    }

    fn compare_resolved<'b>(&mut self, reader: &'b Value, writer: &'b Value, at: String)
    where
        'a: 'b,
    {
        let (reader_ref, writer_ref) = (ref_of(reader), ref_of(writer));
        if let (Some(r), Some(w)) = (reader_ref, writer_ref)
            && !self.seen.insert((r.to_owned(), w.to_owned()))
        {
            return;
        }
        let reader = Self::resolve(self.reader_root, reader);
        let writer = Self::resolve(self.writer_root, writer);
        // Equal text means equal schemas only if its `$ref`s lead to equal places.
        if (reader == writer && (self.roots_equal || !contains_ref(reader)))
            || accepts_anything(reader)
            || rejects_everything(writer)
        {
            return;
        }
        if rejects_everything(reader) {
            self.report("TYPE_NARROWED", &at, "the reader accepts nothing here".into());
            return;
        }
        // `true` is the schema that accepts anything: `{}`.
        let anything = Map::new();
        let as_map = |schema: &'b Value| match schema {
            Value::Bool(true) => Some(&anything),
            other => other.as_object(),
        };
        let (Some(r), Some(w)) = (as_map(reader), as_map(writer)) else { return };

        if self.combinators(reader, writer, r, w, &at) {
            return;
        }
        self.types(r, w, &at);
        self.values(r, w, &at);
        self.numbers(r, w, &at);
        self.strings(r, w, &at);
        self.objects(r, w, &at);
        self.arrays(r, w, &at);
    }

    /// `anyOf`/`oneOf` branches; other combinators must be unchanged. True when handled.
    fn combinators(
        &mut self,
        reader: &Value,
        writer: &Value,
        r: &Map<String, Value>,
        w: &Map<String, Value>,
        at: &str,
    ) -> bool {
        for key in ["allOf", "if", "then", "else", "dependentSchemas"] {
            if r.get(key) != w.get(key) && r.get(key).is_some() {
                self.report(
                    "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                    &format!("{at}/{key}"),
                    format!("'{key}' was added or changed; Sluice only accepts it unchanged"),
                );
            }
        }
        // `not`: the reader may forbid only what the writer forbade, so the writer's `not` must
        // accept everything the reader's does.
        match (r.get("not"), w.get("not")) {
            (Some(reader_not), Some(writer_not)) if !self.reads(writer_not, reader_not) => self.report(
                "NOT_TYPE_EXTENDED",
                &format!("{at}/not"),
                "the reader's 'not' forbids values the writer's allowed".into(),
            ),
            (Some(reader_not), None) if !rejects_everything(reader_not) => self.report(
                "NOT_TYPE_EXTENDED",
                &format!("{at}/not"),
                "the reader added a 'not' that forbids values the writer allowed".into(),
            ),
            _ => {}
        }
        match (branches(r), branches(w)) {
            (None, None) => false,
            (Some((rb, any)), Some((wb, _))) => {
                let key = if any { "anyOf" } else { "oneOf" };
                for (i, branch) in wb.iter().enumerate() {
                    if !rb.iter().any(|rb| self.reads(rb, branch)) {
                        self.report(
                            "SUM_TYPE_NARROWED",
                            &format!("{at}/{key}"),
                            format!("no reader branch accepts the writer's branch {i}"),
                        );
                    }
                }
                true
            }
            (Some((rb, any)), None) => {
                let key = if any { "anyOf" } else { "oneOf" };
                if !rb.iter().any(|b| self.reads(b, writer)) {
                    self.report(
                        "SUM_TYPE_NARROWED",
                        &format!("{at}/{key}"),
                        "no reader branch accepts the writer's schema".into(),
                    );
                }
                true
            }
            (None, Some((wb, any))) => {
                let key = if any { "anyOf" } else { "oneOf" };
                for (i, branch) in wb.iter().enumerate() {
                    if !self.reads(reader, branch) {
                        self.report(
                            "SUM_TYPE_NARROWED",
                            &format!("{at}/{key}/{i}"),
                            format!("the reader does not accept the writer's branch {i}"),
                        );
                    }
                }
                true
            }
        }
    }

    /// The patterns that match a property name. A pattern this engine cannot compile (ECMA-262
    /// look-around, or larger than 1 MiB compiled) matches nothing. Each match is a step of the
    /// comparison's budget, and each pattern is compiled once, so many patterns against many
    /// names end within the budget too.
    fn covering<'v>(&self, patterns: &[(&'v str, &'v Value)], name: &str) -> Vec<(&'v str, &'v Value)> {
        let mut found = Vec::new();
        for (pattern, schema) in patterns {
            if !self.budget.step(self.depth) {
                break;
            }
            let mut regexes = self.regexes.borrow_mut();
            if regexes.len() >= MAX_PATTERNS && !regexes.contains_key(*pattern) {
                self.budget.give_up();
                break;
            }
            let regex = regexes
                .entry((*pattern).to_owned())
                .or_insert_with(|| regex::RegexBuilder::new(pattern).size_limit(1 << 20).build().ok());
            if regex.as_ref().is_some_and(|re| re.is_match(name)) {
                found.push((*pattern, *schema));
            }
        }
        found
    }

    /// Whether `reader` accepts everything `writer` does, without reporting.
    fn reads(&self, reader: &Value, writer: &Value) -> bool {
        let key = (std::ptr::from_ref(reader) as usize, std::ptr::from_ref(writer) as usize);
        if let Some(known) = self.memo.borrow().get(&key) {
            return *known;
        }
        let mut probe = Checker {
            reader_root: self.reader_root,
            writer_root: self.writer_root,
            roots_equal: self.roots_equal,
            found: Vec::new(),
            seen: self.seen.clone(),
            budget: self.budget,
            memo: self.memo,
            regexes: self.regexes,
            depth: self.depth,
        };
        probe.compare(reader, writer, String::new());
        let reads = probe.found.is_empty() && !self.budget.exceeded();
        self.memo.borrow_mut().insert(key, reads);
        reads
    }

    fn types(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, at: &str) {
        let (Some(reader_types), writer_types) = (type_set(r), type_set(w)) else { return };
        let writer_types = writer_types.unwrap_or_else(|| TYPES.to_vec());
        let missing: Vec<&str> = writer_types
            .into_iter()
            .filter(|t| !(reader_types.contains(t) || (*t == "integer" && reader_types.contains(&"number"))))
            .collect();
        if !missing.is_empty() {
            self.report(
                "TYPE_NARROWED",
                &format!("{at}/type"),
                format!("the reader no longer accepts type {}", missing.join(", ")),
            );
        }
    }

    fn values(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, at: &str) {
        let allowed = |m: &Map<String, Value>| -> Option<Vec<Value>> {
            m.get("const").map(|c| vec![c.clone()]).or_else(|| m.get("enum").and_then(Value::as_array).cloned())
        };
        if let Some(reader_values) = allowed(r) {
            match allowed(w) {
                None => self.report(
                    "ENUM_ARRAY_NARROWED",
                    &format!("{at}/enum"),
                    "the reader restricts values the writer did not".into(),
                ),
                Some(writer_values) => {
                    let missing: Vec<String> =
                        writer_values.iter().filter(|v| !reader_values.contains(v)).map(Value::to_string).collect();
                    if !missing.is_empty() {
                        self.report(
                            "ENUM_ARRAY_NARROWED",
                            &format!("{at}/enum"),
                            format!("the reader no longer accepts {}", missing.join(", ")),
                        );
                    }
                }
            }
        }
    }

    fn numbers(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, at: &str) {
        for (key, kind, rises) in [
            ("minimum", "MINIMUM_INCREASED", true),
            ("exclusiveMinimum", "EXCLUSIVE_MINIMUM_INCREASED", true),
            ("maximum", "MAXIMUM_DECREASED", false),
            ("exclusiveMaximum", "EXCLUSIVE_MAXIMUM_DECREASED", false),
            ("minLength", "MIN_LENGTH_INCREASED", true),
            ("maxLength", "MAX_LENGTH_DECREASED", false),
            ("minItems", "MIN_ITEMS_INCREASED", true),
            ("maxItems", "MAX_ITEMS_DECREASED", false),
            ("minProperties", "MIN_PROPERTIES_INCREASED", true),
            ("maxProperties", "MAX_PROPERTIES_DECREASED", false),
        ] {
            let Some(reader_bound) = r.get(key).and_then(Value::as_f64) else { continue };
            let narrowed = match w.get(key).and_then(Value::as_f64) {
                None => true,
                Some(writer_bound) if rises => reader_bound > writer_bound,
                Some(writer_bound) => reader_bound < writer_bound,
            };
            if narrowed {
                self.report(kind, &format!("{at}/{key}"), format!("'{key}' narrows what the writer allowed"));
            }
        }
        if let Some(reader_step) = r.get("multipleOf").and_then(Value::as_f64) {
            let divides = w.get("multipleOf").and_then(Value::as_f64).is_some_and(|writer_step| {
                let ratio = writer_step / reader_step;
                (ratio - ratio.round()).abs() < 1e-9
            });
            if !divides {
                self.report(
                    "MULTIPLE_OF_CHANGED",
                    &format!("{at}/multipleOf"),
                    "'multipleOf' narrows what the writer allowed".into(),
                );
            }
        }
    }

    fn strings(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, at: &str) {
        for (key, kind) in [("pattern", "PATTERN_CHANGED"), ("format", "FORMAT_CHANGED")] {
            if let Some(reader_value) = r.get(key)
                && w.get(key) != Some(reader_value)
            {
                self.report(kind, &format!("{at}/{key}"), format!("'{key}' was added or changed"));
            }
        }
    }

    fn objects(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, at: &str) {
        let empty = Map::new();
        let reader_props = r.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let writer_props = w.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let required = |m: &Map<String, Value>| -> Vec<String> {
            m.get("required")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        let writer_required = required(w);
        for name in required(r) {
            if !writer_required.contains(&name) {
                self.report(
                    "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
                    &format!("{at}/required"),
                    format!("property '{name}' is required by the reader but was optional for the writer"),
                );
            }
        }
        let reader_extra = r.get("additionalProperties");
        let writer_extra = w.get("additionalProperties");
        let (reader_patterns, writer_patterns) = (patterns(r), patterns(w));
        for (name, writer_schema) in writer_props {
            if let Some(reader_schema) = reader_props.get(name) {
                self.compare(reader_schema, writer_schema, format!("{at}/properties/{}", escape(name)));
                continue;
            }
            // Not declared by the reader: its patterns, else its additional properties, read it.
            let covering: Vec<(&str, &Value)> = self.covering(&reader_patterns, name);
            if !covering.is_empty() {
                for (pattern, reader_schema) in covering {
                    self.compare(reader_schema, writer_schema, format!("{at}/patternProperties/{}", escape(pattern)));
                }
                continue;
            }
            match reader_extra {
                Some(Value::Bool(false)) => self.report(
                    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                    &format!("{at}/properties"),
                    format!("property '{name}' was removed from a closed content model"),
                ),
                Some(extra @ Value::Object(_)) => {
                    self.compare(extra, writer_schema, format!("{at}/additionalProperties"))
                }
                _ => {}
            }
        }
        for (name, reader_schema) in reader_props {
            if writer_props.contains_key(name) || accepts_anything(reader_schema) {
                continue;
            }
            // The writer's patterns said what a property of this name held.
            let covering: Vec<(&str, &Value)> = self.covering(&writer_patterns, name);
            if !covering.is_empty() {
                for (_, writer_schema) in covering {
                    self.compare(reader_schema, writer_schema, format!("{at}/properties/{}", escape(name)));
                }
                continue;
            }
            match writer_extra {
                Some(Value::Bool(false)) => {}
                Some(extra @ Value::Object(_)) => {
                    self.compare(reader_schema, extra, format!("{at}/properties/{}", escape(name)))
                }
                _ => self.report(
                    "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                    &format!("{at}/properties/{}", escape(name)),
                    format!(
                        "property '{name}' was added, but the writer's open content model allowed any value for it"
                    ),
                ),
            }
        }
        for (pattern, reader_schema) in &reader_patterns {
            let at = format!("{at}/patternProperties/{}", escape(pattern));
            match writer_patterns.iter().find(|(p, _)| p == pattern) {
                Some((_, writer_schema)) => self.compare(reader_schema, writer_schema, at),
                // Names the writer left to its additional properties (open: anything).
                None => match writer_extra {
                    Some(Value::Bool(false)) => {}
                    Some(extra @ Value::Object(_)) => self.compare(reader_schema, extra, at),
                    _ if accepts_anything(reader_schema) => {}
                    _ => self.report(
                        "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                        &at,
                        format!("properties matching '{pattern}' were open to any value for the writer"),
                    ),
                },
            }
        }
        match (reader_extra, writer_extra) {
            (Some(Value::Bool(false)), Some(Value::Bool(false))) | (None | Some(Value::Bool(true)), _) => {}
            (Some(Value::Bool(false)), _) => self.report(
                "ADDITIONAL_PROPERTIES_NARROWED",
                &format!("{at}/additionalProperties"),
                "the reader closed a content model the writer left open".into(),
            ),
            (Some(reader_extra), Some(writer_extra @ Value::Object(_))) => {
                self.compare(reader_extra, writer_extra, format!("{at}/additionalProperties"));
            }
            (Some(reader_extra), _) if !accepts_anything(reader_extra) => self.report(
                "ADDITIONAL_PROPERTIES_NARROWED",
                &format!("{at}/additionalProperties"),
                "the reader restricts additional properties the writer allowed".into(),
            ),
            _ => {}
        }
    }

    /// Arrays as tuples: positional schemas (`prefixItems`, or draft ≤ 2019-09's `items: [...]`,
    /// both compared at `/items/<i>` as Confluent does) and one schema for every later item.
    fn arrays(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, at: &str) {
        let (reader, writer) = (ArrayShape::of(r), ArrayShape::of(w));
        let open = Value::Bool(true);
        for i in 0..reader.positions.len().max(writer.positions.len()) {
            let reader_item = reader.item(i).unwrap_or(&open);
            let writer_item = writer.item(i).unwrap_or(&open);
            if i >= writer.positions.len() && writer.rest.is_none() && !accepts_anything(reader_item) {
                self.report(
                    "ITEM_ADDED_TO_OPEN_CONTENT_MODEL",
                    &format!("{at}/items/{i}"),
                    format!("item {i} was open to any value for the writer"),
                );
                continue;
            }
            if i >= reader.positions.len()
                && reader.rest.is_some_and(rejects_everything)
                && !rejects_everything(writer_item)
            {
                self.report(
                    "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                    &format!("{at}/items/{i}"),
                    format!("the reader takes no item {i}, which the writer could write"),
                );
                continue;
            }
            self.compare(reader_item, writer_item, format!("{at}/items/{i}"));
        }
        let rest_at = format!("{at}/{}", reader.rest_key);
        match (reader.rest, writer.rest) {
            (None, _) => {}
            (Some(reader_rest), None) if !accepts_anything(reader_rest) => {
                let kind = if reader.positions.is_empty() { "ITEMS_NARROWED" } else { "ADDITIONAL_ITEMS_NARROWED" };
                self.report(kind, &rest_at, "the reader restricts array items the writer left open".into());
            }
            (Some(_), None) => {}
            (Some(reader_rest), Some(writer_rest)) => self.compare(reader_rest, writer_rest, rest_at),
        }
        if r.get("uniqueItems") == Some(&Value::Bool(true)) && w.get("uniqueItems") != Some(&Value::Bool(true)) {
            self.report("UNIQUE_ITEMS_ADDED", &format!("{at}/uniqueItems"), "the reader requires unique items".into());
        }
    }
}

/// What an array schema says about its items.
struct ArrayShape<'v> {
    /// Schemas of the first items, by position.
    positions: Vec<&'v Value>,
    /// The schema of every other item; `None` when any value is allowed.
    rest: Option<&'v Value>,
    /// The keyword `rest` came from, for locations.
    rest_key: &'static str,
}

impl<'v> ArrayShape<'v> {
    fn of(schema: &'v Map<String, Value>) -> Self {
        match (schema.get("prefixItems").and_then(Value::as_array), schema.get("items")) {
            (Some(prefix), items) => Self { positions: prefix.iter().collect(), rest: items, rest_key: "items" },
            (None, Some(Value::Array(tuple))) => Self {
                positions: tuple.iter().collect(),
                rest: schema.get("additionalItems"),
                rest_key: "additionalItems",
            },
            (None, items) => Self { positions: Vec::new(), rest: items, rest_key: "items" },
        }
    }

    fn item(&self, i: usize) -> Option<&'v Value> {
        self.positions.get(i).copied().or(self.rest)
    }
}

/// The `anyOf` (true) or `oneOf` (false) branches of a schema.
fn branches(schema: &Map<String, Value>) -> Option<(&Vec<Value>, bool)> {
    match schema.get("anyOf").and_then(Value::as_array) {
        Some(any) => Some((any, true)),
        None => schema.get("oneOf").and_then(Value::as_array).map(|one| (one, false)),
    }
}

/// A schema's `patternProperties`: (pattern, schema) pairs.
fn patterns(schema: &Map<String, Value>) -> Vec<(&str, &Value)> {
    schema
        .get("patternProperties")
        .and_then(Value::as_object)
        .map(|map| map.iter().map(|(pattern, schema)| (pattern.as_str(), schema)).collect())
        .unwrap_or_default()
}

fn contains_ref(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => map.iter().any(|(key, value)| key == "$ref" || contains_ref(value)),
        Value::Array(items) => items.iter().any(contains_ref),
        _ => false,
    }
}

fn ref_of(schema: &Value) -> Option<&str> {
    schema.get("$ref").and_then(Value::as_str)
}

fn type_set(schema: &Map<String, Value>) -> Option<Vec<&str>> {
    match schema.get("type")? {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

/// `true`, `{}`, or a schema with nothing but annotations.
fn accepts_anything(schema: &Value) -> bool {
    match schema {
        Value::Bool(b) => *b,
        Value::Object(m) => m.keys().all(|k| {
            matches!(
                k.as_str(),
                "$schema"
                    | "$id"
                    | "$comment"
                    | "title"
                    | "description"
                    | "default"
                    | "examples"
                    | "deprecated"
                    | "readOnly"
                    | "writeOnly"
            )
        }),
        _ => false,
    }
}

fn rejects_everything(schema: &Value) -> bool {
    *schema == Value::Bool(false)
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
