// segment_raw (C++): segment one 16-bit camera frame with libunet's C++ wrapper (unet.hpp).
//
//   segment_raw MODEL.safetensors FRAME.raw WIDTH HEIGHT OUT.raw [THREADS]
//
// FRAME.raw: WIDTH × HEIGHT uint16 samples per input channel (planar, packed rows, host byte
// order). OUT.raw: the uint16 label map. Errors arrive as unet::Error exceptions.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "unet.hpp"

int main(int argc, char **argv) {
  if (argc < 6 || argc > 7) {
    std::cerr << "usage: " << argv[0] << " MODEL.safetensors FRAME.raw WIDTH HEIGHT OUT.raw [THREADS]\n";
    return 2;
  }
  try {
    const unet::Model model = unet::Model::load(argv[1]);
    const std::size_t width = std::stoul(argv[3]), height = std::stoul(argv[4]);
    unet_frame_options options = unet_frame_options_default();
    if (argc == 7) options.threads = std::stoul(argv[6]);

    std::vector<std::uint16_t> pixels(model.in_channels() * height * width);
    std::ifstream in(argv[2], std::ios::binary);
    if (!in.read(reinterpret_cast<char *>(pixels.data()),
                 static_cast<std::streamsize>(pixels.size() * sizeof(std::uint16_t)))) {
      std::cerr << "segment_raw: " << argv[2] << " is shorter than " << pixels.size()
                << " samples\n";
      return 1;
    }

    std::vector<float> scratch;  // reused across frames in a real acquisition loop
    const std::vector<std::uint16_t> labels = model.segment_frame<std::uint16_t>(
        height, width, pixels, unet::OutputKind::LabelsU16, scratch, options);

    std::ofstream out(argv[5], std::ios::binary);
    out.write(reinterpret_cast<const char *>(labels.data()),
              static_cast<std::streamsize>(labels.size() * sizeof(std::uint16_t)));
    if (!out) {
      std::cerr << "segment_raw: cannot write " << argv[5] << "\n";
      return 1;
    }
    const unet::Size tile = model.frame_tile_size(height, width, UNET_SAMPLE_U16, options);
    std::vector<std::size_t> counts(model.num_classes());
    for (std::uint16_t l : labels) counts[l]++;
    std::cout << "libunet " << unet::version() << ": " << width << "x" << height << " frame, "
              << counts.size() << " class(es), tile " << tile.height << "x" << tile.width << ", "
              << options.threads << " thread(s), scratch " << scratch.size() * 4 << " bytes\n";
    for (std::size_t c = 0; c < counts.size(); c++) {
      std::cout << "class " << c << ": " << counts[c] << " pixels\n";
    }
  } catch (const unet::Error &e) {
    std::cerr << "segment_raw: " << unet_status_message(e.status()) << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception &e) {
    std::cerr << "segment_raw: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
