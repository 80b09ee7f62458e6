//! `.proto` text from a `FileDescriptorProto`, for schemas registered in Confluent's
//! `serialized` form (a base64 descriptor, as Confluent's Python and Go serializers register
//! them): Confluent's registry answers them as `.proto` text, and so does Sluice's.
//!
//! Only what a `.proto` file says plainly is printed: messages, fields (labels, maps, oneofs,
//! `proto3 optional`, `packed`, `deprecated`, `json_name`), nested types, enums, reserved ranges
//! and names, services, and the common file options. A descriptor with anything else
//! (extensions, custom options, proto2 defaults, groups, editions) is not printed; the caller
//! keeps the base64 text, and it also keeps it unless the printed text compiles back to the same
//! descriptor.

use std::fmt::Write as _;

use prost_reflect::prost_types::field_descriptor_proto::{Label, Type};
use prost_reflect::prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto, ServiceDescriptorProto,
};

/// The file as `.proto` text, or `None` if it holds something this printer does not write.
pub fn print(file: &FileDescriptorProto) -> Option<String> {
    let mut out = String::new();
    let syntax = match file.syntax() {
        "" | "proto2" => "proto2",
        "proto3" => "proto3",
        _ => return None,
    };
    if !file.extension.is_empty() {
        return None;
    }
    let _ = writeln!(out, "syntax = \"{syntax}\";");
    if let Some(package) = &file.package {
        let _ = writeln!(out, "package {package};");
    }
    if !file.dependency.is_empty() {
        out.push('\n');
    }
    for (i, dependency) in file.dependency.iter().enumerate() {
        let i = i32::try_from(i).ok()?;
        let kind = if file.public_dependency.contains(&i) {
            "public "
        } else if file.weak_dependency.contains(&i) {
            "weak "
        } else {
            ""
        };
        let _ = writeln!(out, "import {kind}{};", quoted(dependency));
    }
    if let Some(options) = &file.options {
        let mut printed = false;
        let mut option = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                if !printed {
                    out.push('\n');
                    printed = true;
                }
                let _ = writeln!(out, "option {name} = {value};");
            }
        };
        option("java_package", options.java_package.as_deref().map(quoted));
        option("java_outer_classname", options.java_outer_classname.as_deref().map(quoted));
        option("java_multiple_files", options.java_multiple_files.map(|b| b.to_string()));
        option("go_package", options.go_package.as_deref().map(quoted));
        option("csharp_namespace", options.csharp_namespace.as_deref().map(quoted));
        option("objc_class_prefix", options.objc_class_prefix.as_deref().map(quoted));
        option("php_namespace", options.php_namespace.as_deref().map(quoted));
        option("ruby_package", options.ruby_package.as_deref().map(quoted));
        option("swift_prefix", options.swift_prefix.as_deref().map(quoted));
        option("cc_enable_arenas", options.cc_enable_arenas.map(|b| b.to_string()));
        option("deprecated", options.deprecated.map(|b| b.to_string()));
    }
    for message in &file.message_type {
        out.push('\n');
        print_message(&mut out, message, 0, syntax)?;
    }
    for e in &file.enum_type {
        out.push('\n');
        print_enum(&mut out, e, 0)?;
    }
    for service in &file.service {
        out.push('\n');
        print_service(&mut out, service)?;
    }
    Some(out)
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn print_message(out: &mut String, message: &DescriptorProto, depth: usize, syntax: &str) -> Option<()> {
    if depth > 32 || !message.extension.is_empty() || !message.extension_range.is_empty() {
        return None;
    }
    if message.options.as_ref().is_some_and(|o| o.map_entry() || !o.uninterpreted_option.is_empty()) {
        return None;
    }
    indent(out, depth);
    let _ = writeln!(out, "message {} {{", message.name());
    let inner = depth + 1;
    let mut printed_oneofs = Vec::new();
    for field in &message.field {
        let oneof = field.oneof_index.filter(|_| !field.proto3_optional());
        match oneof {
            Some(index) if !printed_oneofs.contains(&index) => {
                printed_oneofs.push(index);
                let oneof = message.oneof_decl.get(usize::try_from(index).ok()?)?;
                indent(out, inner);
                let _ = writeln!(out, "oneof {} {{", oneof.name());
                for member in message.field.iter().filter(|f| f.oneof_index == Some(index) && !f.proto3_optional()) {
                    print_field(out, message, member, inner + 1, syntax, true)?;
                }
                indent(out, inner);
                out.push_str("}\n");
            }
            Some(_) => {}
            None => print_field(out, message, field, inner, syntax, false)?,
        }
    }
    for nested in &message.nested_type {
        if nested.options.as_ref().is_some_and(prost_reflect::prost_types::MessageOptions::map_entry) {
            continue;
        }
        print_message(out, nested, inner, syntax)?;
    }
    for e in &message.enum_type {
        print_enum(out, e, inner)?;
    }
    for range in &message.reserved_range {
        indent(out, inner);
        // Message ranges end exclusively.
        let (start, end) = (range.start(), range.end() - 1);
        if end >= 536_870_911 {
            let _ = writeln!(out, "reserved {start} to max;");
        } else if start == end {
            let _ = writeln!(out, "reserved {start};");
        } else {
            let _ = writeln!(out, "reserved {start} to {end};");
        }
    }
    for name in &message.reserved_name {
        indent(out, inner);
        let _ = writeln!(out, "reserved {};", quoted(name));
    }
    indent(out, depth);
    out.push_str("}\n");
    Some(())
}

fn print_field(
    out: &mut String,
    message: &DescriptorProto,
    field: &FieldDescriptorProto,
    depth: usize,
    syntax: &str,
    in_oneof: bool,
) -> Option<()> {
    if field.default_value.is_some() || field.extendee.is_some() || field.r#type() == Type::Group {
        return None;
    }
    indent(out, depth);
    let entry = (field.label() == Label::Repeated && field.r#type() == Type::Message)
        .then(|| {
            let simple = field.type_name().rsplit('.').next()?;
            message.nested_type.iter().find(|n| n.name() == simple && n.options.as_ref().is_some_and(|o| o.map_entry()))
        })
        .flatten();
    if let Some(entry) = entry {
        let key = entry.field.iter().find(|f| f.number() == 1)?;
        let value = entry.field.iter().find(|f| f.number() == 2)?;
        let _ = write!(out, "map<{}, {}> ", type_name(key)?, type_name(value)?);
    } else {
        let label = match field.label() {
            Label::Repeated => "repeated ",
            Label::Required => "required ",
            Label::Optional if field.proto3_optional() => "optional ",
            Label::Optional if syntax == "proto2" && !in_oneof => "optional ",
            Label::Optional => "",
        };
        let _ = write!(out, "{label}{} ", type_name(field)?);
    }
    let _ = write!(out, "{} = {}", field.name(), field.number());
    let mut options = Vec::new();
    if let Some(json_name) = &field.json_name
        && *json_name != default_json_name(field.name())
    {
        options.push(format!("json_name = {}", quoted(json_name)));
    }
    if let Some(field_options) = &field.options {
        if !field_options.uninterpreted_option.is_empty() {
            return None;
        }
        if let Some(packed) = field_options.packed {
            options.push(format!("packed = {packed}"));
        }
        if let Some(deprecated) = field_options.deprecated {
            options.push(format!("deprecated = {deprecated}"));
        }
    }
    if !options.is_empty() {
        let _ = write!(out, " [{}]", options.join(", "));
    }
    out.push_str(";\n");
    Some(())
}

fn type_name(field: &FieldDescriptorProto) -> Option<String> {
    Some(
        match field.r#type() {
            Type::Double => "double",
            Type::Float => "float",
            Type::Int64 => "int64",
            Type::Uint64 => "uint64",
            Type::Int32 => "int32",
            Type::Fixed64 => "fixed64",
            Type::Fixed32 => "fixed32",
            Type::Bool => "bool",
            Type::String => "string",
            Type::Bytes => "bytes",
            Type::Uint32 => "uint32",
            Type::Sfixed32 => "sfixed32",
            Type::Sfixed64 => "sfixed64",
            Type::Sint32 => "sint32",
            Type::Sint64 => "sint64",
            Type::Message | Type::Enum => return field.type_name.clone().filter(|n| !n.is_empty()),
            Type::Group => return None,
        }
        .to_owned(),
    )
}

fn print_enum(out: &mut String, e: &EnumDescriptorProto, depth: usize) -> Option<()> {
    indent(out, depth);
    let _ = writeln!(out, "enum {} {{", e.name());
    if let Some(options) = &e.options {
        if !options.uninterpreted_option.is_empty() {
            return None;
        }
        if let Some(allow) = options.allow_alias {
            indent(out, depth + 1);
            let _ = writeln!(out, "option allow_alias = {allow};");
        }
    }
    for value in &e.value {
        if value.options.is_some() {
            return None;
        }
        indent(out, depth + 1);
        let _ = writeln!(out, "{} = {};", value.name(), value.number());
    }
    for range in &e.reserved_range {
        indent(out, depth + 1);
        // Enum ranges end inclusively.
        let (start, end) = (range.start(), range.end());
        if start == end {
            let _ = writeln!(out, "reserved {start};");
        } else if end == i32::MAX {
            let _ = writeln!(out, "reserved {start} to max;");
        } else {
            let _ = writeln!(out, "reserved {start} to {end};");
        }
    }
    for name in &e.reserved_name {
        indent(out, depth + 1);
        let _ = writeln!(out, "reserved {};", quoted(name));
    }
    indent(out, depth);
    out.push_str("}\n");
    Some(())
}

fn print_service(out: &mut String, service: &ServiceDescriptorProto) -> Option<()> {
    if service.options.is_some() {
        return None;
    }
    let _ = writeln!(out, "service {} {{", service.name());
    for method in &service.method {
        if method.options.is_some() {
            return None;
        }
        let stream = |yes: bool| if yes { "stream " } else { "" };
        let _ = writeln!(
            out,
            "  rpc {}({}{}) returns ({}{});",
            method.name(),
            stream(method.client_streaming()),
            method.input_type(),
            stream(method.server_streaming()),
            method.output_type()
        );
    }
    out.push_str("}\n");
    Some(())
}

/// protoc's default JSON name: underscores dropped, the letter after each one upper-cased.
pub(super) fn default_json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A string literal as `.proto` writes one.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{b:03o}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
