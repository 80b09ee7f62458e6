//! Avro schema compatibility: can a reader with one schema read data written with another?
//!
//! This follows the resolution rules of the Avro specification ("Schema Resolution"), the rules
//! Confluent's registry enforces through Avro's `SchemaCompatibility`:
//! - primitives must match, or the writer's type must promote to the reader's (int → long, float,
//!   double; long → float, double; float → double; string ↔ bytes); logical types are compared by
//!   their underlying type, as Avro does;
//! - named types (record, enum, fixed) must have the same unqualified name, or the reader must
//!   list the writer's full name among its aliases (qualified with the reader's namespace);
//! - every reader field must be in the writer (by name or one of the reader field's aliases) or
//!   have a default; writer fields the reader lacks are skipped;
//! - every writer enum symbol must be a reader symbol, unless the reader enum has a default;
//! - fixed sizes must be equal;
//! - every branch of a writer union must be readable by the reader (a reader union reads a branch
//!   when any of its branches can);
//! - arrays and maps compare their items and values.
//!
//! Unlike Avro's own checker, every incompatibility is reported, each with the location in the
//! reader schema (`/fields/2/type/items`) and the Confluent error type name.

use std::collections::{HashMap, HashSet};

use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, Name, UuidSchema};

/// One reason a reader cannot read a writer's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// Confluent's error type (`READER_FIELD_MISSING_DEFAULT_VALUE`, `TYPE_MISMATCH`, …).
    pub kind: &'static str,
    /// Where in the reader schema, as a JSON pointer into its JSON form.
    pub location: String,
    pub message: String,
}

/// Everything that stops `reader` from reading data written with `writer`.
/// `reader` and `writer` come with the schemas their references name, whose named types they
/// may use.
pub(crate) fn check(
    (reader, reader_refs): (&Schema, &[Schema]),
    (writer, writer_refs): (&Schema, &[Schema]),
    budget: &super::Budget,
) -> Vec<Incompatibility> {
    fn names_of<'s>(schema: &'s Schema, refs: &'s [Schema]) -> HashMap<String, &'s Schema> {
        let mut all = HashMap::new();
        for referenced in refs {
            all.extend(names(referenced));
        }
        all.extend(names(schema));
        all
    }
    let (reader_names, writer_names) = (names_of(reader, reader_refs), names_of(writer, writer_refs));
    let memo = std::cell::RefCell::default();
    let mut checker = Checker {
        reader_names: &reader_names,
        writer_names: &writer_names,
        seen: HashSet::new(),
        found: Vec::new(),
        budget,
        memo: &memo,
        depth: 0,
    };
    checker.compare(reader, writer, String::new());
    checker.found
}

struct Checker<'s, 'n> {
    reader_names: &'n HashMap<String, &'s Schema>,
    writer_names: &'n HashMap<String, &'s Schema>,
    /// (reader, writer) named-type pairs already compared: recursive types terminate here.
    seen: HashSet<(String, String)>,
    found: Vec<Incompatibility>,
    budget: &'n super::Budget,
    /// Whether a reader schema reads a writer schema, by their addresses: union branches are
    /// tried again and again, and nested unions would make that exponential (Avro's Java
    /// checker memoizes for the same reason).
    memo: &'n std::cell::RefCell<HashMap<(usize, usize), bool>>,
    depth: usize,
}

/// The type of a schema for comparison: references resolved, logical types reduced to their
/// underlying Avro type.
#[derive(Clone, Copy)]
enum Shape<'s> {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(&'s Schema),
    Map(&'s Schema),
    Union(&'s [Schema]),
    Record(&'s apache_avro::schema::RecordSchema),
    Enum(&'s apache_avro::schema::EnumSchema),
    Fixed { name: &'s Name, aliases: Option<&'s Vec<apache_avro::schema::Alias>>, size: usize },
    Unknown,
}

impl Shape<'_> {
    fn label(&self) -> String {
        match self {
            Shape::Null => "null".into(),
            Shape::Boolean => "boolean".into(),
            Shape::Int => "int".into(),
            Shape::Long => "long".into(),
            Shape::Float => "float".into(),
            Shape::Double => "double".into(),
            Shape::Bytes => "bytes".into(),
            Shape::String => "string".into(),
            Shape::Array(_) => "array".into(),
            Shape::Map(_) => "map".into(),
            Shape::Union(_) => "union".into(),
            Shape::Record(r) => format!("record {}", r.name.name()),
            Shape::Enum(e) => format!("enum {}", e.name.name()),
            Shape::Fixed { name, .. } => format!("fixed {}", name.name()),
            Shape::Unknown => "unknown".into(),
        }
    }
}

impl<'s> Checker<'s, '_> {
    fn shape(&self, schema: &'s Schema, reader_side: bool) -> Shape<'s> {
        match schema {
            Schema::Null => Shape::Null,
            Schema::Boolean => Shape::Boolean,
            Schema::Int | Schema::Date | Schema::TimeMillis => Shape::Int,
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Shape::Long,
            Schema::Float => Shape::Float,
            Schema::Double => Shape::Double,
            Schema::Bytes | Schema::BigDecimal | Schema::Uuid(UuidSchema::Bytes) => Shape::Bytes,
            Schema::String | Schema::Uuid(UuidSchema::String) => Shape::String,
            Schema::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => Shape::Bytes,
                InnerDecimalSchema::Fixed(f) => {
                    Shape::Fixed { name: &f.name, aliases: f.aliases.as_ref(), size: f.size }
                }
            },
            Schema::Uuid(UuidSchema::Fixed(f)) | Schema::Fixed(f) | Schema::Duration(f) => {
                Shape::Fixed { name: &f.name, aliases: f.aliases.as_ref(), size: f.size }
            }
            Schema::Array(a) => Shape::Array(&a.items),
            Schema::Map(m) => Shape::Map(&m.types),
            Schema::Union(u) => Shape::Union(u.variants()),
            Schema::Record(r) => Shape::Record(r),
            Schema::Enum(e) => Shape::Enum(e),
            Schema::Ref { name } => {
                let names = if reader_side { &self.reader_names } else { &self.writer_names };
                match names.get(&name.fullname(None)) {
                    Some(target) => self.shape(target, reader_side),
                    None => Shape::Unknown,
                }
            }
        }
    }

    fn report(&mut self, kind: &'static str, location: &str, message: String) {
        self.found.push(Incompatibility {
            kind,
            location: if location.is_empty() { "/".into() } else { location.into() },
            message,
        });
    }

    fn compare(&mut self, reader: &'s Schema, writer: &'s Schema, at: String) {
        if !self.budget.step(self.depth) {
            return;
        }
        self.depth += 1;
        self.compare_shapes(reader, writer, at);
        self.depth -= 1;
    }

    fn compare_shapes(&mut self, reader: &'s Schema, writer: &'s Schema, at: String) {
        let (r, w) = (self.shape(reader, true), self.shape(writer, false));
        match (r, w) {
            // A writer union: each branch must be readable.
            (_, Shape::Union(branches)) => {
                for (i, branch) in branches.iter().enumerate() {
                    if !self.readable(reader, branch) {
                        let label = self.shape(branch, false).label();
                        let kind = if matches!(r, Shape::Union(_)) { "MISSING_UNION_BRANCH" } else { "TYPE_MISMATCH" };
                        self.report(
                            kind,
                            &at,
                            format!("the reader has no type for the writer's union branch {i} ({label})"),
                        );
                    }
                }
                // Compare against the matching branch so nested problems get their location.
                if let Shape::Union(reader_branches) = r {
                    for branch in branches {
                        if let Some(j) = self.best_branch(reader_branches, branch) {
                            self.compare(&reader_branches[j], branch, format!("{at}/{j}"));
                        }
                    }
                }
            }
            // A reader union and a plain writer: some branch must read it.
            (Shape::Union(branches), _) => match self.best_branch(branches, writer) {
                Some(j) => self.compare(&branches[j], writer, format!("{at}/{j}")),
                None => self.report(
                    "MISSING_UNION_BRANCH",
                    &at,
                    format!("the reader union has no branch that reads the writer's {}", w.label()),
                ),
            },
            (Shape::Null, Shape::Null) | (Shape::Boolean, Shape::Boolean) => {}
            (Shape::Int, Shape::Int)
            | (Shape::Long, Shape::Int | Shape::Long)
            | (Shape::Float, Shape::Int | Shape::Long | Shape::Float)
            | (Shape::Double, Shape::Int | Shape::Long | Shape::Float | Shape::Double)
            | (Shape::Bytes | Shape::String, Shape::Bytes | Shape::String) => {}
            (Shape::Array(ri), Shape::Array(wi)) => self.compare(ri, wi, format!("{at}/items")),
            (Shape::Map(rv), Shape::Map(wv)) => self.compare(rv, wv, format!("{at}/values")),
            (Shape::Fixed { name: rn, aliases, size: rs }, Shape::Fixed { name: wn, size: ws, .. }) => {
                if !same_name(rn, &aliases, wn) {
                    self.name_mismatch(&at, rn, wn);
                } else if rs != ws {
                    self.report(
                        "FIXED_SIZE_MISMATCH",
                        &format!("{at}/size"),
                        format!("fixed {} has size {rs} in the reader and {ws} in the writer", rn.name()),
                    );
                }
            }
            (Shape::Enum(re), Shape::Enum(we)) => {
                if !same_name(&re.name, &re.aliases.as_ref(), &we.name) {
                    self.name_mismatch(&at, &re.name, &we.name);
                } else if re.default.is_none() {
                    let missing: Vec<&str> =
                        we.symbols.iter().filter(|s| !re.symbols.contains(s)).map(String::as_str).collect();
                    if !missing.is_empty() {
                        self.report(
                            "MISSING_ENUM_SYMBOLS",
                            &format!("{at}/symbols"),
                            format!(
                                "enum {} in the reader lacks the writer's symbols [{}] and has no default",
                                re.name.name(),
                                missing.join(", ")
                            ),
                        );
                    }
                }
            }
            (Shape::Record(rr), Shape::Record(wr)) => {
                if !same_name(&rr.name, &rr.aliases.as_ref(), &wr.name) {
                    self.name_mismatch(&at, &rr.name, &wr.name);
                    return;
                }
                if !self.seen.insert((rr.name.fullname(None), wr.name.fullname(None))) {
                    return;
                }
                for (i, field) in rr.fields.iter().enumerate() {
                    let written = wr.fields.iter().find(|w| w.name == field.name || field.aliases.contains(&w.name));
                    match written {
                        Some(written) => self.compare(&field.schema, &written.schema, format!("{at}/fields/{i}/type")),
                        None if field.default.is_some() => {}
                        None => self.report(
                            "READER_FIELD_MISSING_DEFAULT_VALUE",
                            &format!("{at}/fields/{i}"),
                            format!(
                                "field '{}' of record {} is not in the writer's schema and has no default",
                                field.name,
                                rr.name.name()
                            ),
                        ),
                    }
                }
            }
            (r, w) => self.report(
                "TYPE_MISMATCH",
                &at,
                format!("the reader expects {} where the writer wrote {}", r.label(), w.label()),
            ),
        }
    }

    fn name_mismatch(&mut self, at: &str, reader: &Name, writer: &Name) {
        self.report(
            "NAME_MISMATCH",
            &format!("{at}/name"),
            format!("the reader's type is named {} and the writer's {}", reader.name(), writer.name()),
        );
    }

    /// Whether `reader` can read `writer` without any incompatibility (used to match branches).
    fn readable(&self, reader: &'s Schema, writer: &'s Schema) -> bool {
        let key = (std::ptr::from_ref(reader) as usize, std::ptr::from_ref(writer) as usize);
        if let Some(known) = self.memo.borrow().get(&key) {
            return *known;
        }
        let mut probe = Checker {
            reader_names: self.reader_names,
            writer_names: self.writer_names,
            seen: self.seen.clone(),
            found: Vec::new(),
            budget: self.budget,
            memo: self.memo,
            depth: self.depth,
        };
        probe.compare(reader, writer, String::new());
        let readable = probe.found.is_empty() && !self.budget.exceeded();
        self.memo.borrow_mut().insert(key, readable);
        readable
    }

    /// The reader branch Avro resolution would pick for a writer type: one that reads it, named
    /// types preferring the same name, else the first of the same kind (for nested locations).
    fn best_branch(&self, branches: &'s [Schema], writer: &'s Schema) -> Option<usize> {
        branches.iter().position(|b| self.readable(b, writer)).or_else(|| {
            let w = self.shape(writer, false);
            branches.iter().position(|b| std::mem::discriminant(&self.shape(b, true)) == std::mem::discriminant(&w))
        })
    }
}

/// Avro's name rule (as its Java checker applies it): the unqualified names match, or one of
/// the reader's aliases, qualified with the reader's namespace, is the writer's full name.
fn same_name(reader: &Name, aliases: &Option<&Vec<apache_avro::schema::Alias>>, writer: &Name) -> bool {
    reader.name() == writer.name()
        || aliases.is_some_and(|aliases| {
            let writer_full = writer.fullname(None);
            aliases.iter().any(|a| a.fullname(reader.namespace()) == writer_full)
        })
}

/// Named types by full name, for resolving references.
fn names(schema: &Schema) -> HashMap<String, &Schema> {
    fn walk<'s>(schema: &'s Schema, out: &mut HashMap<String, &'s Schema>) {
        match schema {
            Schema::Record(r) => {
                out.insert(r.name.fullname(None), schema);
                for field in &r.fields {
                    walk(&field.schema, out);
                }
            }
            Schema::Enum(e) => {
                out.insert(e.name.fullname(None), schema);
            }
            Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => {
                out.insert(f.name.fullname(None), schema);
            }
            Schema::Decimal(d) => {
                if let InnerDecimalSchema::Fixed(f) = &d.inner {
                    out.insert(f.name.fullname(None), schema);
                }
            }
            Schema::Array(a) => walk(&a.items, out),
            Schema::Map(m) => walk(&m.types, out),
            Schema::Union(u) => u.variants().iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = HashMap::new();
    walk(schema, &mut out);
    out
}
