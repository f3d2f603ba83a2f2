//! The remote write 1.0 messages (`prometheus/prompb`: `WriteRequest`, `TimeSeries`,
//! `Label`, `Sample`), derived with prost instead of generated from the `.proto` (four
//! small messages; no build script, no `protoc`), and the request body: the encoded
//! `WriteRequest` in the snappy *block* format, as the spec requires.

use prost::Message as _;

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name, `__name__` among them, names unique.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// In timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The body of one POST: protobuf, then snappy (block format).
pub fn encode(req: &WriteRequest) -> Result<Vec<u8>, String> {
    let raw = req.encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&raw).map_err(|e| format!("snappy: {e}"))
}

/// The inverse of [`encode`] (tests, and `--inspect`-style tools).
pub fn decode(body: &[u8]) -> Result<WriteRequest, String> {
    let raw = snap::raw::Decoder::new().decompress_vec(body).map_err(|e| format!("snappy: {e}"))?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| format!("protobuf: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_the_wire_format() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label { name: "__name__".into(), value: "up".into() }],
                samples: vec![Sample { value: 1.0, timestamp: 1000 }],
            }],
        };
        let raw = req.encode_to_vec();
        // field 1 (timeseries, length-delimited), then the series: field 1 (label) …
        assert_eq!(&raw[..2], &[0x0a, (raw.len() - 2) as u8]);
        assert_eq!(raw[2], 0x0a, "label is field 1 of TimeSeries");
        // … and the sample: field 1 double (0x09) then field 2 varint (0x10) 1000.
        assert!(raw.ends_with(&[0x10, 0xe8, 0x07]), "{raw:02x?}");
        assert_eq!(decode(&encode(&req).unwrap()).unwrap(), req);
    }
}
