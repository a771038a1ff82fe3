//! Response keys in selection order. async-graphql resolves a selection
//! set's fields concurrently and writes each into the answer as it
//! finishes, so with enough fields the keys come back in completion order;
//! the spec wants them in the order the query selected them. This puts
//! them back, following the executed operation's selection sets through
//! fragments.
//!
//! Type conditions are not checked: in an object, the fields of a fragment
//! that did not apply are simply absent. (A response key selected both in
//! such a fragment and later elsewhere would take the earlier place; this
//! schema has no interfaces or unions, so no fragment can fail to apply.)

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationDefinition, Selection,
    SelectionSet,
};
use async_graphql::{Name, Positioned, Value};
use std::collections::HashMap;

type Fragments = HashMap<Name, Positioned<FragmentDefinition>>;

/// Reorders `data` (the answer of `operation` in `doc`) into selection
/// order, recursively.
pub fn restore(doc: &ExecutableDocument, operation: Option<&str>, data: &mut Value) {
    if let Some(op) = executed(doc, operation) {
        reorder(&[&op.node.selection_set.node], &doc.fragments, data);
    }
}

/// The operation a request with this `operation` name runs, if the
/// document names one it can run.
pub(crate) fn executed<'a>(
    doc: &'a ExecutableDocument,
    operation: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    match (&doc.operations, operation) {
        (DocumentOperations::Single(op), _) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, op)| op),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        _ => None,
    }
}

/// The response keys `set` selects, first occurrence first, each with the
/// sub-selections asked of it (a key selected twice merges both).
fn keys<'a>(
    set: &'a SelectionSet,
    fragments: &'a Fragments,
    out: &mut Vec<(&'a Name, Vec<&'a SelectionSet>)>,
) {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(f) => {
                let key = &f.node.response_key().node;
                let sub = &f.node.selection_set.node;
                match out.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, subs)) => subs.push(sub),
                    None => out.push((key, vec![sub])),
                }
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = fragments.get(&spread.node.fragment_name.node) {
                    keys(&fragment.node.selection_set.node, fragments, out);
                }
            }
            Selection::InlineFragment(inline) => {
                keys(&inline.node.selection_set.node, fragments, out)
            }
        }
    }
}

fn reorder(sets: &[&SelectionSet], fragments: &Fragments, value: &mut Value) {
    match value {
        Value::Object(map) => {
            let mut order = Vec::new();
            for set in sets {
                keys(set, fragments, &mut order);
            }
            let mut sorted = IndexMap::with_capacity(map.len());
            for (key, subs) in order {
                if let Some(mut v) = map.shift_remove(key) {
                    reorder(&subs, fragments, &mut v);
                    sorted.insert(key.clone(), v);
                }
            }
            // Nothing should be left; if something is, it keeps its place
            // after the rest rather than being lost.
            sorted.extend(map.drain(..));
            *map = sorted;
        }
        Value::List(items) => {
            for item in items {
                reorder(sets, fragments, item);
            }
        }
        _ => {}
    }
}
