//! Encoding of one Parquet file in memory: the store then publishes it whole
//! (local rename or one S3 upload), so no reader ever sees part of a file.

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

pub(crate) fn encode(batch: &RecordBatch, props: &WriterProperties) -> Result<Vec<u8>, ParquetError> {
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props.clone()))?;
    writer.write(batch)?;
    writer.into_inner()
}
